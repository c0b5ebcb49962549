"""The goomerang client on trio: the asyncio ``Client``'s API shape, on the same engine.

    client = Client("127.0.0.1:8080")
    client.handle(MessageV1, handler)         # handler(sender, message), plain or async
    async with client:                        # connects; close() on exit
        await client.send(message)
        reply = await client.send_sync(message, timeout=5)

The connection's tasks run in the nursery that ``async with`` holds, so
``connect()`` (again after a close, to reconnect by hand) is called inside it.
The engine keeps the deadlines (handshake, heartbeat pings, close) and the flow
control. Not here (asyncio runtime only): automatic reconnect, TLS, metrics.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import trio

from goomerang_proto import (
    AlreadyRunning,
    ClientConnection,
    Closing,
    ConnectionLost,
    GoomerangError,
    HandshakeError,
    Message,
    NotRunning,
    Side,
    Status,
    SyncTimeout,
    TooManyPending,
    UnexpectedReply,
    new_uuid,
)
from goomerang_proto import events as ev

from ..address import parse_listen
from ..endpoint import Endpoint
from ..hooks import CLIENT_HOOKS
from ..options import ClientOptions
from ..sender import Sender
from ..validate import check_close_code, check_message, check_timeout, check_topic
from .connection import Connection, NurseryContext, refuse_unsupported

_ids = itertools.count(1)


class _Pending:
    __slots__ = ("done", "error", "reply")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.reply: Message[Any] | None = None
        self.error: GoomerangError | None = None


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
        self.path, self.extra_headers = path, tuple(headers)
        if self._setup(ClientOptions, CLIENT_HOOKS, Side.CLIENT, kwargs, "Client").reconnect:
            raise ValueError("reconnect=True is not supported by the trio client")
        refuse_unsupported(self.options, ClientOptions(), ("max_queue_bytes", "outbox_size"))
        self._conn: Connection | None = None
        self._pending: dict[str, _Pending] = {}
        self._connected = trio.Event()
        self._closed_by_user = False
        self._error: GoomerangError | None = None
        self._upgraded = False
        self.close_code: int | None = None

    async def connect(self) -> None:
        """Connect and upgrade; HandshakeError (refused, or after handshake_timeout seconds),
        ConnectionLost (TCP connect failed), AlreadyRunning."""
        if self._nursery is None:
            raise RuntimeError("connect() runs inside `async with client:` (it holds the reader)")
        if self.status in (Status.RUNNING, Status.CLOSING):
            raise AlreadyRunning(f"client is {self.status.name}")
        o = self.options
        self.router.freeze()
        with trio.move_on_after(o.handshake_timeout) as timer:
            try:
                stream = await trio.open_tcp_stream(self.host, self.port)
            except OSError as exc:
                raise ConnectionLost(f"could not connect to {self.server}: {exc}") from exc
        if timer.cancelled_caught:
            raise HandshakeError(f"could not connect to {self.server} in {o.handshake_timeout} s")
        engine = ClientConnection(
            self.server,
            self.path,
            headers=self.extra_headers,
            registry=self.router.registry,
            max_message_size=o.max_message_size,
            clock=time.time_ns,
            handshake_timeout=o.handshake_timeout,
            ping_interval=o.heartbeat_interval or None,
            ping_timeout=o.ping_timeout or None,
            close_timeout=o.close_timeout,
            high_water=o.write_limit,
            now=trio.current_time(),
        )
        self._conn = Connection(stream, engine, self, next(_ids))
        self._connected = trio.Event()
        self._closed_by_user, self.close_code, self._error = False, None, None
        self._nursery.start_soon(self._conn.run)
        self._upgraded = False
        await self._connected.wait()  # Connected, or ConnectionClosed with the reason
        if not self._upgraded:  # (a server may close right after the upgrade: not an error)
            raise self._error or HandshakeError(f"upgrade to {self.server} failed")

    async def close(self, code: int = 1000) -> None:
        """Close gracefully: Close frame, wait (close_timeout) for the answer, end CLOSED."""
        check_close_code(code)
        conn = self._conn
        if self.status is not Status.RUNNING or conn is None:
            raise NotRunning(f"client is {self.status.name}: nothing to close")
        self._closed_by_user = True
        self._move(Status.CLOSING)
        conn.close(code)
        with trio.move_on_after(self.options.close_timeout + 1.0):
            await conn.closed.wait()
        self._ended(ConnectionLost("client closed while the request was pending"))

    def _ended(self, error: GoomerangError) -> None:
        for pending in self._pending.values():
            pending.error = error
            pending.done.set()
        if self.status is Status.CLOSING:
            self._move(Status.CLOSED)
            self.hooks.run("on_close")

    async def _enter(self, nursery: trio.Nursery) -> None:
        await self.connect()

    async def _leave(self) -> None:
        if self.status is Status.RUNNING:
            await self.close()

    def _command(self, op: Callable[[ClientConnection], Any]) -> Any:
        if self.status is Status.CLOSING:
            raise Closing("client is closing: no new messages are accepted")
        if self.status is not Status.RUNNING or self._conn is None:
            raise NotRunning(f"client is {self.status.name}: connect() first")
        engine = self._conn.engine
        assert isinstance(engine, ClientConnection)
        result = op(engine)
        self._conn.flush()
        return result

    async def send(self, message: Message[Any]) -> int:
        """Send ``message``; its payload size in bytes (waits while the write buffer is full)."""
        check_message(message)
        self._command(lambda e: None)
        assert self._conn is not None
        return await self._conn.send_message(message, "")

    async def send_sync(self, message: Message[Any], timeout: float | None = 5.0) -> Message[Any]:
        """Send a request and return its reply; SyncTimeout after ``timeout`` seconds (None:
        no limit), ConnectionLost when the connection ends first, TooManyPending."""
        check_message(message)
        check_timeout(timeout)
        if len(self._pending) >= self.options.max_pending_sync:
            raise TooManyPending(f"{len(self._pending)} sync requests already wait for replies")
        uuid, pending = new_uuid(), _Pending()
        self._command(lambda e: e.send_sync(message, uuid))
        self._pending[uuid] = pending
        try:
            with trio.move_on_after(math.inf if timeout is None else timeout):
                await pending.done.wait()
            if pending.error is not None:
                raise pending.error
            if pending.reply is None:
                raise SyncTimeout(f"no reply to {message.kind} within {timeout} s")
            return pending.reply
        finally:
            del self._pending[uuid]

    async def broadcast(self, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to every client; the payload size in bytes."""
        check_message(message)
        return int(self._command(lambda e: e.broadcast(message)))

    async def publish(self, topic: str, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to the subscribers of ``topic``; the size."""
        check_topic(topic)
        check_message(message)
        return int(self._command(lambda e: e.publish(topic, message)))

    async def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic`` (no acknowledgement on the wire, as in Go goomerang)."""
        check_topic(topic)
        self._command(lambda e: e.subscribe(topic))

    async def unsubscribe(self, topic: str) -> None:
        """Unsubscribe from ``topic``."""
        check_topic(topic)
        self._command(lambda e: e.unsubscribe(topic))

    async def on_event(self, conn: Connection, event: ev.Event) -> None:
        """One engine event (the connection calls this after each read)."""
        if isinstance(event, ev.MessageReceived):
            chain = self.router.resolve(event.message.kind)
            if chain is not None:
                await conn.submit(chain, Sender(conn), event.message)
        elif isinstance(event, ev.SyncReplyReceived):
            pending = self._pending.get(event.message.uuid)
            if pending is None:
                self.report_error(UnexpectedReply(f"reply to unknown {event.message.uuid!r}"))
            else:
                pending.reply = event.message
                pending.done.set()
        elif isinstance(event, ev.ErrorOccurred):
            self.report_error(event.error)
        elif isinstance(event, ev.Connected):
            # RUNNING here, not when connect() resumes: a Close read right after the
            # upgrade must find the client RUNNING (RUNNING -> CLOSING -> CLOSED, as in Go)
            self._upgraded = True
            self._move(Status.RUNNING)
            self.hooks.run("on_configuration", self.options)
            self._connected.set()
        elif isinstance(event, ev.ConnectionClosed):
            self.close_code, self._error = event.code, event.error
            self._connected.set()
            if self.status is Status.RUNNING and not self._closed_by_user:
                # the server closed (or vanished): RUNNING -> CLOSING -> CLOSED, as in Go
                # a clean close (1000, 1001, or a Close without status: 1005) is no error
                if event.code not in (1000, 1001, 1005):
                    lost = f"connection to {self.server} lost (code {event.code})"
                    self.report_error(ConnectionLost(lost))
                self._move(Status.CLOSING)
                self._ended(ConnectionLost(f"connection to {self.server} lost"))


__all__ = ["Client"]
