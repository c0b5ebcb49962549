"""The goomerang client on trio: the asyncio ``Client``'s API shape, on the same engine.

    client = Client("127.0.0.1:8080")
    client.handle(MessageV1, handler)         # handler(sender, message), plain or async
    async with client:                        # connects; close() on exit
        await client.send(message)
        reply = await client.send_sync(message, timeout=5)

The connection's tasks run in the nursery that ``async with`` holds, so
``connect()`` (again after a close, to reconnect by hand) is called inside it.
The engine keeps the deadlines and the flow control; replies, error replies and
losses follow the rules of :mod:`goomerang_io.handling.client_events`. Not here
(asyncio runtime only): automatic reconnect, TLS, metrics, queue groups.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import trio
from google.protobuf.message import Message as ProtoMessage

from goomerang_proto import (
    AlreadyRunning,
    ClientConnection,
    ConnectionLost,
    GoomerangError,
    HandshakeError,
    Message,
    Side,
    Status,
    new_uuid,
)
from goomerang_proto import events as ev

from ..address import parse_listen
from ..endpoint import Endpoint
from ..engines import client_engine
from ..handling.client_events import ClientEvents, prepare_router, sendable
from ..handling.handlers import Job
from ..hooks import CLIENT_HOOKS
from ..options import ClientOptions, refuse_unsupported
from ..validate import (
    check_headers,
    check_message,
    check_reply_class,
    check_timeout,
    check_topic,
    expect_reply,
)
from .connection import Connection, NurseryContext

R = TypeVar("R", bound=ProtoMessage)
_ids = itertools.count(1)


class Client(NurseryContext, Endpoint):
    """A goomerang client on trio; every :class:`ClientOptions` field is a keyword argument
    (``reconnect=True`` raises ValueError), plus ``headers`` (extra handshake headers)."""

    def __init__(
        self,
        server: str = "127.0.0.1:8080",
        *,
        headers: Iterable[tuple[str, str]] = (),
        path: str = "/ws",
        **kwargs: Any,
    ) -> None:
        self.server, (self.host, self.port) = server, parse_listen(server)
        self.path, self.extra_headers = path, check_headers(headers)
        if self._setup(ClientOptions, CLIENT_HOOKS, Side.CLIENT, kwargs, "Client").reconnect:
            raise ValueError("reconnect=True is not supported by the trio client")
        refuse_unsupported(self.options, ("max_queue_bytes", "outbox_size"), "trio")
        self._events = ClientEvents(self)
        self._conn: Connection | None = None
        self._connected = trio.Event()
        self._upgraded = False
        self._error: GoomerangError | None = None
        self._connecting = False  # a connect() is under way (a second one is refused)
        self.close_code: int | None = None

    async def connect(self) -> None:
        """Connect and upgrade; HandshakeError (refused, or after handshake_timeout seconds),
        ConnectionLost (TCP connect failed), AlreadyRunning."""
        if self._nursery is None:
            raise RuntimeError("connect() runs inside `async with client:` (it holds the reader)")
        if self.status in (Status.RUNNING, Status.CLOSING):
            raise AlreadyRunning(f"client is {self.status.name}")
        if self._connecting:
            raise AlreadyRunning("connect() is already in progress")
        self._connecting = True
        try:
            await self._connect()
        finally:
            self._connecting = False

    async def _connect(self) -> None:
        o = self.options
        prepare_router(self.router)
        with trio.move_on_after(o.handshake_timeout) as timer:
            try:
                stream = await trio.open_tcp_stream(self.host, self.port)
            except OSError as exc:
                raise ConnectionLost(f"could not connect to {self.server}: {exc}") from exc
        if timer.cancelled_caught:
            raise HandshakeError(f"could not connect to {self.server} in {o.handshake_timeout} s")
        engine = client_engine(
            o,
            self.host,
            self.port,
            self.path,
            self.extra_headers,
            self.router.registry,
            trio.current_time(),
        )
        # its handlers' sends answer the server (reading pauses while they pile up);
        # the application's own sends wait in `await send` instead (in_response=False)
        self._conn = Connection(stream, engine, self, next(_ids), in_response=True)
        self._connected = trio.Event()
        self._upgraded, self.close_code, self._error = False, None, None
        assert self._nursery is not None  # checked by connect()
        self._nursery.start_soon(self._conn.run)
        try:
            await self._connected.wait()  # Connected, or ConnectionClosed with the reason
        except BaseException:  # the caller cancelled connect(): leave nothing behind
            self._conn.abort()
            raise
        if not self._upgraded:  # (a server may close right after the upgrade: not an error)
            raise self._error or HandshakeError(f"upgrade to {self.server} failed")

    async def close(self, code: int = 1000) -> None:
        """Close gracefully: Close frame, wait (close_timeout) for the answer, end CLOSED.
        Running handlers go on (a handler may close its own client)."""
        self._events.begin_close(code)
        assert self._conn is not None  # RUNNING: connected
        self._conn.close(code)
        await self._conn.wait_stream_closed(self.options.close_timeout + 1.0)
        self._events.end_close()

    async def _enter(self, nursery: trio.Nursery) -> None:
        await self.connect()

    async def _leave(self) -> None:
        if self.status is Status.RUNNING:
            await self.close()
        conn = self._conn
        if conn is not None and not conn.stream_closed.is_set():
            # leaving `async with` ends the connection's tasks: drop its stream first
            # (a server that sent Close but never ends TCP would keep the socket open)
            conn.abort()
            with trio.move_on_after(self.options.close_timeout):
                await conn.stream_closed.wait()

    def _command(self, op: Callable[[ClientConnection], Any]) -> Any:
        conn = self._conn
        engine = sendable(self.status, None if conn is None else conn.engine)
        assert isinstance(engine, ClientConnection) and conn is not None
        result = op(engine)
        conn.flush()
        return result

    async def send(self, message: Message[Any]) -> int:
        """Send ``message``; its payload size in bytes (waits while the write buffer is full)."""
        check_message(message)
        self._command(lambda e: None)
        assert self._conn is not None
        return await self._conn.send_message(message, "", in_response=False)

    async def send_sync(
        self, message: Message[Any], timeout: float | None = 5.0, *, reply: type[R] | None = None
    ) -> Message[Any]:
        """Send a request and return its reply (a ``reply`` class is checked: UnexpectedReply);
        SyncTimeout after ``timeout`` seconds (None: no limit), RemoteError on an error reply,
        ConnectionLost when the connection ends first, TooManyPending."""
        check_message(message)
        check_timeout(timeout)
        check_reply_class(reply)
        uuid, done = new_uuid(), trio.Event()
        waiter = self._events.pending.open(uuid, done.set)
        try:
            self._command(lambda e: e.send_sync(message, uuid))
            with trio.move_on_after(math.inf if timeout is None else timeout):
                await self._drained()  # the timeout covers the wait for the write buffer
                await done.wait()
            return expect_reply(
                waiter.result(f"no reply to {message.kind} within {timeout} s"), reply
            )
        finally:
            self._events.pending.discard(uuid)

    async def broadcast(self, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to every client; the payload size in bytes
        (waits while the write buffer is full, as ``send`` does)."""
        check_message(message)
        size = int(self._command(lambda e: e.broadcast(message)))
        await self._drained()
        return size

    async def publish(self, topic: str, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to the subscribers of ``topic``; the size
        (waits while the write buffer is full, as ``send`` does)."""
        check_topic(topic)
        check_message(message)
        size = int(self._command(lambda e: e.publish(topic, message)))
        await self._drained()
        return size

    async def _drained(self) -> None:
        """Wait while the connection is above its high-water mark (until it is gone)."""
        conn = self._conn
        if conn is not None:
            await conn.writable.wait()

    async def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic`` (no acknowledgement on the wire, as in Go goomerang)."""
        check_topic(topic)
        self._command(lambda e: e.subscribe(topic))

    async def unsubscribe(self, topic: str) -> None:
        """Unsubscribe from ``topic``."""
        check_topic(topic)
        self._command(lambda e: e.unsubscribe(topic))

    def on_event(self, conn: Connection, event: ev.Event) -> Job | None:
        """One engine event (the connection calls this after each read)."""
        if conn is not self._conn:  # an abandoned attempt (its connect() was cancelled)
            return None
        if isinstance(event, ev.Connected):
            self._upgraded = True
        elif isinstance(event, ev.ConnectionClosed):
            self.close_code, self._error = event.code, event.error
        job = self._events.handle(conn, event)
        if isinstance(event, ev.Connected | ev.ConnectionClosed):
            self._connected.set()  # connect() resumes
        return job


__all__ = ["Client"]
