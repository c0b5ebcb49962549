"""The test server of client mode: the server profile, recording every frame it gets.

It follows the conformance server profile (echo ``goomerang.example.MessageV1``
async and sync, the sync reply with header ``echo: 1``; broadcast and
publish/subscribe of MessageV1) on the engine in raw mode, so it sees each
envelope exactly as the client wrote it. With ``reorder_sync`` it answers
sync requests pairwise out of order (the protocol correlates by uuid only).
Each connection's frames are handled in arrival order, so a client knows its
subscription is in place once a sync request sent after it on the same
connection has been answered.

Runs an asyncio loop on a daemon thread; ``with ProfileServer() as server:``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from goomerang_proto import codec
from goomerang_proto import events as ev
from goomerang_proto.frames import OP_BINARY
from goomerang_proto.pb import goomerang_frame_pb2 as pb
from goomerang_proto.server_connection import ServerConnection
from goomerang_proto.status import Status
from goomerang_proto.topics import Topics

KIND = "goomerang.example.MessageV1"


@dataclass
class ConnRecord:
    """What one client connection did, as the server saw it."""

    id: int
    path: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    envelopes: list[pb.Frame] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    """Byte length of each binary message, in order."""
    texts: int = 0
    errors: list[str] = field(default_factory=list)
    close_code: int | None = None
    closed_by_client: bool | None = None
    delivered: int = 0
    """Fan-out messages this server sent to the connection."""
    swapped: int = 0
    """Pairs of sync replies sent in the opposite order of their requests."""


class _Proto(asyncio.Protocol):
    def __init__(self, server: ProfileServer) -> None:
        self.server = server
        self.engine = ServerConnection(raw=True, clock=time.time_ns)
        self.transport: asyncio.Transport | None = None
        self.record = server.new_record()
        self.held: bytes | None = None
        self.held_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.engine.receive_data(data)
        self._after()

    def eof_received(self) -> bool | None:
        self.engine.receive_eof()
        self._after()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.held_timer is not None:
            self.held_timer.cancel()
        if self.engine.status is not Status.CLOSED:
            self.engine.abort()
            self._events()
        self.server.conns.pop(self, None)
        self.server.topics.unsubscribe_all(self)

    def _after(self) -> None:
        self._events()
        # engines that defer a framing fault found after complete messages apply it here
        apply_pending: Callable[[], None] | None = getattr(self.engine, "apply_pending", None)
        if apply_pending is not None:
            apply_pending()
            self._events()
        self.flush()

    def flush(self) -> None:
        out = self.engine.data_to_send()
        self._events()
        transport = self.transport
        if transport is None:
            return
        if out:
            transport.write(out)
        abort: Callable[[], bool] | None = getattr(self.engine, "should_abort_transport", None)
        if abort is not None and abort():
            transport.abort()
        elif self.engine.should_close_transport():
            transport.close()

    def _events(self) -> None:
        rec = self.record
        for event in self.engine.events():
            if isinstance(event, ev.Connected):
                rec.path, rec.headers = event.path, event.headers
                self.server.conns[self] = None
            elif isinstance(event, ev.RawMessage):
                if event.opcode == OP_BINARY:
                    self._binary(event.data)
                else:
                    rec.texts += 1
            elif isinstance(event, ev.ConnectionClosed):
                if rec.close_code is None:
                    rec.close_code = event.code
                    rec.closed_by_client = event.by_peer
                if event.error is not None:
                    rec.errors.append(str(event.error))
                self.server.conns.pop(self, None)
                self.server.topics.unsubscribe_all(self)
                self.server.changed()

    def _reply_out_of_order(self, reply: bytes) -> None:
        """Hold a sync reply until the next request's reply has gone out (or 50 ms passed)."""
        held = self.held
        if held is None:
            self.held = reply
            self.held_timer = asyncio.get_running_loop().call_later(0.05, self._release)
            return
        self.held = None
        if self.held_timer is not None:
            self.held_timer.cancel()
        self.engine.send_bytes(reply)
        self.engine.send_bytes(held)
        self.record.swapped += 1

    def _release(self) -> None:
        held, self.held = self.held, None
        if held is not None and self.engine.status is Status.RUNNING:
            self.engine.send_bytes(held)
            self.flush()

    def _binary(self, data: bytes) -> None:
        rec = self.record
        rec.sizes.append(len(data))
        try:
            env = codec.decode_frame(data)
        except Exception as exc:
            rec.errors.append(str(exc))
            return
        rec.envelopes.append(env)
        kind = env.kind
        if kind == KIND:
            headers = dict(env.headers)
            if env.is_sync:
                headers["echo"] = "1"
            reply = codec.pack_envelope(
                KIND,
                env.payload,
                headers,
                uuid=env.uuid,
                is_sync=env.is_sync,
                creation_ns=time.time_ns(),
            )
            if env.is_sync and self.server.reorder_sync:
                self._reply_out_of_order(reply)
            else:
                self.engine.send_bytes(reply)
        elif kind == codec.SUBSCRIBE_CMD:
            self.server.topics.subscribe(pb.SubscribeCmd.FromString(env.payload).topic, self)
        elif kind == codec.UNSUBSCRIBE_CMD:
            self.server.topics.unsubscribe(pb.UnsubscribeCmd.FromString(env.payload).topic, self)
        elif kind in (codec.PUBLISH_CMD, codec.BROADCAST_CMD):
            cmd: Any = (pb.PublishCmd if kind == codec.PUBLISH_CMD else pb.BroadcastCmd).FromString(
                env.payload
            )
            if kind == codec.PUBLISH_CMD:
                targets = self.server.topics.subscribers(cmd.topic)
            else:
                targets = list(self.server.conns)
            out = codec.pack_envelope(
                cmd.kind,
                cmd.message,
                codec.strip_command_headers(dict(env.headers)),
                creation_ns=time.time_ns(),
            )
            for target in targets:
                if target.engine.status is Status.RUNNING:
                    target.engine.send_bytes(out)
                    target.record.delivered += 1
                    if target is not self:
                        target.flush()
        else:
            rec.errors.append(f"unknown kind {kind!r}")
        self.server.changed()


class ProfileServer:
    """The profile server on 127.0.0.1 (a free port), recording every connection."""

    def __init__(self) -> None:
        self.records: list[ConnRecord] = []
        self.conns: dict[_Proto, None] = {}
        self.topics: Topics[_Proto] = Topics()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.reorder_sync = False
        """Answer sync requests out of order (pairwise), to check clients correlate by uuid."""
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._main, name="profile-server", daemon=True)

    @property
    def addr(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/ws``."""
        return f"ws://{self.addr}/ws"

    def new_record(self) -> ConnRecord:
        """A record for a new TCP connection."""
        with self._lock:
            rec = ConnRecord(len(self.records) + 1)
            self.records.append(rec)
            return rec

    def take_records(self) -> list[ConnRecord]:
        """The records so far; later connections start a new list."""
        with self._lock:
            out, self.records = self.records, []
            return out

    def changed(self) -> None:
        """Wake :meth:`wait_closed` (called on the loop thread after each change)."""
        with self._cond:
            self._cond.notify_all()

    def wait_closed(self, timeout: float) -> bool:
        """Wait until every recorded connection has ended; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: all(r.close_code is not None for r in self.records), timeout
            )

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _start(self) -> None:
        self._server = await self.loop.create_server(lambda: _Proto(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def __enter__(self) -> ProfileServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the profile server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for proto in list(self.conns):
                if proto.transport is not None:
                    proto.transport.abort()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
