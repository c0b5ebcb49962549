"""Fan-out: one prepared frame written to many connections (broadcast, publish, backplane)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from goomerang_proto import Message
from goomerang_proto.codec import pack
from goomerang_proto.errors import MessageTooLarge
from goomerang_proto.frames import OP_BINARY, build_frame

from ..results import BroadcastResult
from .backplane_bridge import BackplaneBridge
from .server_protocol import ServerProtocol
from .server_view import ServerView
from .subscriptions import Subscriptions


class Fanout:
    """Sends a server's broadcasts and publishes, here and through the backplane.

    A message is packed and framed once, then written to every target: the
    server's WebSocket connections (``conns``) for a broadcast, the topic's
    subscribers and one member of each queue group for a publish. While a
    connection handles a read (``server.in_batch``) the frames are queued on
    their targets and written when the read is handled (``server.flush_dirty``).
    """

    def __init__(
        self,
        server: ServerView,
        conns: dict[ServerProtocol, None],
        subscriptions: Subscriptions,
        bridge: BackplaneBridge,
    ) -> None:
        self.server = server
        self._conns = conns
        self._subscriptions = subscriptions
        self._bridge = bridge
        self._flush_soon = False

    def broadcast(self, message: Message[Any], report: bool = True) -> list[BroadcastResult]:
        """Write ``message`` to every connection; MessageTooLarge above ``max_message_size``."""
        server = self.server
        t0 = time.perf_counter()
        envelope = pack(message, creation_ns=time.time_ns())
        if len(envelope) > server.options.max_message_size:  # our own limit, before any write
            raise MessageTooLarge(len(envelope), server.options.max_message_size)
        frame = build_frame(OP_BINARY, envelope)
        size = message.payload.ByteSize()
        results = self._fanout(frame, self._conns, size, report or server.hooks.has("on_broadcast"))
        self._bridge.send("broadcast_nowait", message.kind, envelope)
        duration = time.perf_counter() - t0
        if server.metrics is not None:
            server.metrics.broadcast_sent(message.kind, duration)
        server.hooks.run("on_broadcast", message.kind, results, duration)
        return results

    def publish(self, topic: str, message: Message[Any]) -> list[BroadcastResult]:
        """Write ``message`` to the subscribers of ``topic`` and one member of each group."""
        server = self.server
        envelope = pack(message, creation_ns=time.time_ns())
        if len(envelope) > server.options.max_message_size:  # our own limit, before any write
            raise MessageTooLarge(len(envelope), server.options.max_message_size)
        frame = build_frame(OP_BINARY, envelope)
        size = message.payload.ByteSize()
        subscriptions = self._subscriptions
        results = self._fanout(frame, subscriptions.topics.subscribers(topic), size)
        if topic in subscriptions.groups and not self._bridge.routes_groups():
            for group in subscriptions.groups.groups(topic):
                proto = subscriptions.pick_member(topic, group)
                if proto is not None:
                    results.extend(self._fanout(frame, (proto,), size))
        self._bridge.send("publish_nowait", topic, message.kind, envelope)
        if server.metrics is not None:
            server.metrics.published(topic, message.kind)
        server.hooks.run("on_publish", topic, message.kind)
        return results

    def _fanout(
        self, frame: bytes, targets: Iterable[ServerProtocol], size: int, report: bool = True
    ) -> list[BroadcastResult]:
        """Write ``frame`` to every target; one BroadcastResult each when ``report``.

        Without ``report`` (a client's command that no ``on_broadcast`` hook
        watches: nobody reads the results) no result is built or timed.
        """
        results: list[BroadcastResult] = []
        perf = time.perf_counter
        defer = self.server.in_batch
        if not report:
            for proto in list(targets):
                proto.write_prepared(frame, defer)
            return results
        for proto in list(targets):
            t0 = perf()
            ok = proto.write_prepared(frame, defer)
            results.append(BroadcastResult(size, perf() - t0, proto.conn_id, ok))
        return results

    def from_backplane(self, msg: Any) -> None:
        """Deliver a message that another worker or node fanned out."""
        frame = build_frame(OP_BINARY, msg.frame)
        topics = self._subscriptions.topics
        if msg.groups_only:
            targets = []
        else:
            targets = topics.subscribers(msg.topic) if msg.topic else list(self._conns)
        for group in msg.groups:
            member = self._subscriptions.pick_member(msg.topic, group)
            if member is not None:
                targets.append(member)
        for proto in targets:
            proto.write_prepared(frame, True)
        # The backplane delivers every message of one read before the loop
        # runs this: each target gets one write for all of them.
        if self.server.dirty and not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush_later)

    def _flush_later(self) -> None:
        self._flush_soon = False
        self.server.flush_dirty()
