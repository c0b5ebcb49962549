"""The embedded backplane: worker processes of one machine, relayed by a hub.

Theory of operation. The supervisor process runs a ``LocalHub``: a
listening Unix domain socket served by a plain ``selectors`` loop (the
supervisor's own loop, which also handles signals and child reaping; no
thread, no asyncio in the parent, so forking stays safe). Each worker runs
a ``LocalBackplane``: an asyncio client that connects to the hub, says
HELLO with its node id, then SUBSCRIBE/UNSUBSCRIBE as its local topic
interest changes, and sends DELIVER envelopes for broadcast and publish.
The hub echoes HELLO, SUBSCRIBE and UNSUBSCRIBE back as acknowledgements;
a worker counts as connected once its HELLO (and the topics it re-announces)
are acknowledged, so every message relayed after that reaches it.

The hub relays a DELIVER envelope, byte for byte, to every *other*
connected worker: all of them for a broadcast (empty topic), only those
that subscribed to the topic for a publish. It never sends an envelope back
to its sender, and the client drops its own origin anyway.

Wire: a stream of ``goomerang.backplane.Envelope`` messages, each prefixed
by its length as a 4-byte big-endian unsigned integer. Never pickle.

Faults: a worker that stops reading does not stall the hub: past
``max_buffer`` bytes queued for it, further envelopes for that worker are
dropped and counted (at most once). The other way round, a hub that stops
reading does not grow a worker: past ``max_outbox_bytes`` (default 16 MiB)
waiting to be written to the hub (transport buffer plus this loop turn's
batch), further broadcasts and publishes are dropped for the other workers
(local delivery goes on), counted in ``status()["dropped"]`` /
``["dropped_bytes"]`` and through ``on_drop`` (the server's metric
``goomerang_server_backplane_dropped_total``), and reported once per episode.
Sending never waits and spawns no task. A worker that loses the hub
reconnects with capped exponential backoff forever and re-announces its
topics and queue-group members.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, cast

from goomerang_proto.pb import goomerang_backplane_pb2 as pb

from .base import (
    Backplane,
    BackplaneMessage,
    BackplaneProtocolError,
    BackplaneUnavailable,
    DeliverCallback,
    ErrorCallback,
    decode_envelope,
    describe,
    encode_envelope,
    new_node_id,
    next_backoff,
)
from .stream import DEFAULT_MAX_ENVELOPE, EnvelopeStream, frame_envelope

__all__ = ["LocalBackplane"]

_DELIVER = pb.Envelope.DELIVER
_HELLO = pb.Envelope.HELLO
_SUBSCRIBE = pb.Envelope.SUBSCRIBE
_UNSUBSCRIBE = pb.Envelope.UNSUBSCRIBE
_JOIN = pb.Envelope.JOIN
_LEAVE = pb.Envelope.LEAVE


# ---------------------------------------------------------------- the hub


# ---------------------------------------------------------------- the worker side


class LocalBackplane(Backplane):
    """A worker's connection to the embedded ``LocalHub`` (asyncio).

    ``start`` makes the first connection attempt before returning (a hub in
    the supervisor is normally there); if it fails, the failure goes to
    ``on_error`` and the backplane keeps trying in the background with
    capped exponential backoff, forever, re-announcing its topics each time.
    ``subscribe``/``unsubscribe`` return once the hub acknowledged them
    (or at once while disconnected: the topics are replayed on reconnect).
    """

    backend = "local"
    routes_groups = True

    def __init__(
        self,
        path: str,
        *,
        node_id: str | None = None,
        reconnect_backoff: tuple[float, float] = (0.05, 2.0),
        ack_timeout: float = 5.0,
        max_envelope: int = DEFAULT_MAX_ENVELOPE,
        max_outbox_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.path = path
        self.max_outbox_bytes = max_outbox_bytes
        self._overload_reported = False
        self.node_id = node_id or new_node_id()
        self.reconnect_backoff = reconnect_backoff
        self.ack_timeout = ack_timeout
        self.max_envelope = max_envelope
        self._deliver: DeliverCallback | None = None
        self._on_error: ErrorCallback | None = None
        self._protocol: _HubProtocol | None = None
        self._topics: set[str] = set()
        self._members: dict[tuple[str, str], int] = {}  # local queue-group members
        self._acks: dict[tuple[int, str, str], deque[asyncio.Future[None]]] = {}
        self._wbuf: list[bytes] = []
        self._wbuf_size = 0
        self._flush_handle: asyncio.Handle | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._outage_reported = False
        self._first_attempt: asyncio.Event | None = None
        self._connected: asyncio.Event | None = None
        self.reconnects = 0
        self.sent = 0
        self.received = 0
        self.last_error: str | None = None

    # Backplane API -----------------------------------------------------------

    async def start(self, deliver: DeliverCallback, on_error: ErrorCallback) -> None:
        """Connect to the hub and start relaying; see the class docstring."""
        if self._task is not None:
            raise RuntimeError("LocalBackplane.start() called twice")
        self._deliver = deliver
        self._on_error = on_error
        self._first_attempt = asyncio.Event()
        self._connected = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"goomerang-backplane-{self.node_id}"
        )
        await self._first_attempt.wait()

    async def broadcast(self, kind: str, frame: bytes) -> None:
        """Send a broadcast to every other worker (never waits; see ``broadcast_nowait``)."""
        self.broadcast_nowait(kind, frame)

    async def publish(self, topic: str, kind: str, frame: bytes) -> None:
        """Send a publish to the workers holding ``topic`` (never waits)."""
        self.publish_nowait(topic, kind, frame)

    def broadcast_nowait(self, kind: str, frame: bytes) -> None:
        """Queue a broadcast for every other worker; dropped past ``max_outbox_bytes``."""
        self._send(encode_envelope(_DELIVER, self.node_id, "", kind, frame))

    def publish_nowait(self, topic: str, kind: str, frame: bytes) -> None:
        """Queue a publish for the workers holding ``topic``; raises ValueError for ``""``."""
        if not topic:
            raise ValueError("publish needs a non-empty topic (an empty topic means broadcast)")
        self._send(encode_envelope(_DELIVER, self.node_id, topic, kind, frame))

    async def subscribe(self, topic: str) -> None:
        """Announce local interest in ``topic`` (kept across reconnects)."""
        if topic in self._topics:
            return
        self._topics.add(topic)
        await self._control(_SUBSCRIBE, topic)

    async def unsubscribe(self, topic: str) -> None:
        """Withdraw local interest in ``topic``."""
        if topic not in self._topics:
            return
        self._topics.discard(topic)
        await self._control(_UNSUBSCRIBE, topic)

    async def join(self, topic: str, group: str) -> None:
        """Tell the hub one more local connection is in queue ``group`` of ``topic``."""
        key = (topic, group)
        self._members[key] = self._members.get(key, 0) + 1
        await self._control(_JOIN, topic, group)

    async def leave(self, topic: str, group: str) -> None:
        """Tell the hub one local member of queue ``group`` of ``topic`` left."""
        key = (topic, group)
        count = self._members.get(key, 0)
        if count <= 0:
            return
        if count == 1:
            del self._members[key]
        else:
            self._members[key] = count - 1
        await self._control(_LEAVE, topic, group)

    async def wait_connected(self) -> None:
        """Return once connected to the hub."""
        if self._connected is None:
            raise RuntimeError("LocalBackplane.start() was not called")
        await self._connected.wait()

    async def close(self) -> None:
        """Disconnect and stop reconnecting. Idempotent."""
        self._closing = True
        self._flush_wbuf()  # what was sent before close() goes out
        proto, self._protocol = self._protocol, None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if proto is not None and proto.transport is not None:
            proto.transport.close()  # after writing what is buffered
        self._fail_acks()

    def healthy(self) -> bool:
        """True while connected to the hub."""
        return self._protocol is not None

    def status(self) -> dict[str, object]:
        """Connection state and counters."""
        return {
            "backend": self.backend,
            "node_id": self.node_id,
            "path": self.path,
            "connected": self.healthy(),
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "topics": len(self._topics),
            "sent": self.sent,
            "received": self.received,
            "dropped": self.dropped,
            "dropped_bytes": self.dropped_bytes,
            "queued_bytes": self.queued_bytes(),
        }

    def queued_bytes(self) -> int:
        """Bytes waiting to be written to the hub (bounded by ``max_outbox_bytes``)."""
        proto = self._protocol
        buffered = 0
        if proto is not None and proto.transport is not None:
            buffered = proto.transport.get_write_buffer_size()
        return buffered + self._wbuf_size

    # internals -------------------------------------------------------------

    def _report(self, exc: Exception) -> None:
        self.last_error = str(exc)
        if self._on_error is not None:
            try:
                self._on_error(exc)
            except Exception:  # an error hook must not kill the backplane
                pass

    def _on_payload(self, payload: bytes) -> None:
        env = decode_envelope(payload)
        op = env.op
        if op != _DELIVER:
            key = (op, env.topic, env.group)
            waiters = self._acks.get(key)
            if waiters:
                fut = waiters.popleft()
                if not waiters:
                    del self._acks[key]
                if not fut.done():
                    fut.set_result(None)
            return
        groups = tuple(env.groups)
        if env.origin == self.node_id and not groups:
            return  # our own echo; with groups, the hub chose one of our members
        self.received += 1
        assert self._deliver is not None
        message = BackplaneMessage(
            env.topic, env.kind, env.frame, env.origin, groups, env.groups_only
        )
        try:
            self._deliver(message)
        except Exception as exc:
            self._report(exc)

    def _fail_acks(self) -> None:
        for waiters in self._acks.values():
            for fut in waiters:
                if not fut.done():
                    fut.cancel()
        self._acks.clear()

    def _send(self, payload: bytes) -> None:
        proto = self._protocol
        if proto is None or proto.transport is None or proto.transport.is_closing():
            self._count_drop(1, len(payload))
            if not self._outage_reported:
                self._outage_reported = True
                self._report(
                    BackplaneUnavailable(
                        f"backplane hub {self.path} unreachable: message not relayed to "
                        "other workers (local delivery continues; further drops are counted)"
                    )
                )
            return
        framed = frame_envelope(payload)
        queued = proto.transport.get_write_buffer_size() + self._wbuf_size
        if queued + len(framed) > self.max_outbox_bytes:
            self._count_drop(1, len(framed))
            if not self._overload_reported:
                self._overload_reported = True
                self._report(
                    BackplaneUnavailable(
                        f"backplane hub {self.path} is not reading: {queued} bytes queued "
                        f"(max_outbox_bytes={self.max_outbox_bytes}); message not relayed to "
                        "other workers (further drops are counted)"
                    )
                )
            return
        if self._overload_reported and queued < self.max_outbox_bytes // 2:
            self._overload_reported = False
        self._write(proto.transport, framed)
        self.sent += 1

    def _write(self, transport: asyncio.Transport, framed: bytes) -> None:
        """Coalesce the writes of one loop turn into one transport write."""
        self._wbuf.append(framed)
        self._wbuf_size += len(framed)
        if self._wbuf_size >= 64 * 1024:
            self._flush_wbuf()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush_wbuf)

    def _flush_wbuf(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        buf, self._wbuf, self._wbuf_size = self._wbuf, [], 0
        proto = self._protocol
        if not buf or proto is None or proto.transport is None or proto.transport.is_closing():
            return
        proto.transport.write(b"".join(buf) if len(buf) > 1 else buf[0])

    async def _control(self, op: pb.Envelope.Op, topic: str, group: str = "") -> None:
        proto = self._protocol
        if proto is None or proto.transport is None or proto.transport.is_closing():
            return  # the topic set is replayed on reconnect
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks.setdefault((op, topic, group), deque()).append(fut)
        self._write(
            proto.transport, frame_envelope(_control_envelope(op, self.node_id, topic, group))
        )
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.ack_timeout)
        except asyncio.CancelledError:
            if not fut.cancelled():
                raise  # our caller was cancelled
            # the connection dropped: the topic set is replayed on reconnect
        except TimeoutError:
            self._report(
                BackplaneUnavailable(
                    f"backplane hub {self.path} did not acknowledge {pb.Envelope.Op.Name(op)} "
                    f"{topic!r} within {self.ack_timeout:.1f}s"
                )
            )

    async def _connect(self) -> _HubProtocol:
        loop = asyncio.get_running_loop()
        _transport, proto = await loop.create_unix_connection(lambda: _HubProtocol(self), self.path)
        assert proto.transport is not None
        # HELLO, then the held topics again; connected means the hub has
        # acknowledged them all (so it relays every later message to us)
        hello: asyncio.Future[None] = loop.create_future()
        self._acks.setdefault((_HELLO, "", ""), deque()).append(hello)
        acks = [hello]
        proto.transport.write(frame_envelope(encode_envelope(_HELLO, self.node_id)))
        announce = [(_SUBSCRIBE, topic, "") for topic in sorted(self._topics)]
        for (topic, group), count in sorted(self._members.items()):
            announce.extend([(_JOIN, topic, group)] * count)
        for op, topic, group in announce:
            fut: asyncio.Future[None] = loop.create_future()
            self._acks.setdefault((op, topic, group), deque()).append(fut)
            acks.append(fut)
            proto.transport.write(frame_envelope(_control_envelope(op, self.node_id, topic, group)))
        if acks:  # always: HELLO is in it
            all_acked = asyncio.gather(*acks)
            either: list[asyncio.Future[Any]] = [all_acked, proto.lost]
            await asyncio.wait(either, timeout=self.ack_timeout, return_when="FIRST_COMPLETED")
            if not all_acked.done() or all_acked.cancelled():
                all_acked.cancel()
                self._fail_acks()
                proto.transport.abort()
                why = "closed the connection" if proto.lost.done() else "did not acknowledge"
                raise ConnectionError(f"hub {why} HELLO and {len(acks) - 1} re-subscribed topic(s)")
        return proto

    async def _run(self) -> None:
        delay = 0.0
        base, cap = self.reconnect_backoff
        first = True
        assert self._first_attempt is not None and self._connected is not None
        while not self._closing:
            try:
                proto = await self._connect()
            except OSError as exc:
                self._report(
                    BackplaneUnavailable(
                        f"cannot reach backplane hub {self.path}: {describe(exc)}; retrying"
                    )
                )
                first = False
                self._health_changed(False)
                self._first_attempt.set()
                delay = next_backoff(delay, base, cap)
                await asyncio.sleep(delay)
                continue
            if not first:
                self.reconnects += 1
            first = False
            self._protocol = proto
            self._outage_reported = False
            delay = 0.0
            self._connected.set()
            self._health_changed(True)
            self._first_attempt.set()
            try:
                cause = await proto.lost
            finally:
                self._protocol = None
                self._connected.clear()
                if not self._closing:
                    self._health_changed(False)
                self._fail_acks()
                self._count_drop(len(self._wbuf), self._wbuf_size)  # nothing to write to: lost
                self._flush_wbuf()
            if self._closing:
                return
            why = describe(cause) if cause is not None else "connection closed"
            self._report(
                BackplaneUnavailable(f"lost the backplane hub {self.path}: {why}; reconnecting")
            )
            delay = next_backoff(delay, base, cap)
            await asyncio.sleep(delay)


def _control_envelope(op: pb.Envelope.Op, origin: str, topic: str, group: str) -> bytes:
    return pb.Envelope(op=op, origin=origin, topic=topic, group=group).SerializeToString()


class _HubProtocol(asyncio.Protocol):
    """The asyncio protocol of one connection from a worker to the hub."""

    def __init__(self, owner: LocalBackplane) -> None:
        self.owner = owner
        self.stream = EnvelopeStream(owner.max_envelope)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[Exception | None] = loop.create_future()
        self._drain: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop transports are not subclasses
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            payloads = self.stream.feed(data)
            for payload in payloads:
                self.owner._on_payload(payload)
        except BackplaneProtocolError as exc:
            if not self.lost.done():
                self.lost.set_result(exc)
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)
        self._wake_drain()

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_drain()

    def _wake_drain(self) -> None:
        if self._drain is not None:
            if not self._drain.done():
                self._drain.set_result(None)
            self._drain = None

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if self._drain is not None:
            await asyncio.shield(self._drain)
