"""One goomerang connection on trio: the driver shared by the trio ``Server`` and ``Client``.

It feeds the engine (:mod:`goomerang_proto`) what the stream reads, hands the
events to its owner after each read, writes what the engine produced, arms the
one timer the engine asks for and closes the stream when the engine says so.
``run()`` holds a nursery for the handlers and, inside it, the reader (its own
task) and a writer task. Sends from any task of the trio run append to the
write buffer and wake the writer, so a plain-function handler may call
``sender.send(...)`` without ``await``; awaiting it waits until the buffer is
below ``write_limit``. ``run()`` returns once the stream is closed and the
connection's handlers have finished.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol

import trio

from goomerang_proto import BaseConnection, HandlerError, Message, Status
from goomerang_proto import events as ev

from ..awaitables import Ready

READ_SIZE = 256 * 1024


class Owner(Protocol):
    """What a connection needs of the server or client that owns it."""

    options: Any  # ServerOptions or ClientOptions

    async def on_event(self, conn: Connection, event: ev.Event) -> None: ...

    def report_error(self, exc: BaseException) -> None: ...


class _AfterDrain:
    """``await`` waits for the write buffer to go below ``write_limit``, then gives ``value``."""

    __slots__ = ("conn", "value")

    def __init__(self, conn: Connection, value: int) -> None:
        self.conn, self.value = conn, value

    def __await__(self) -> Generator[Any, None, int]:
        yield from self.conn.below_limit.wait().__await__()
        return self.value


class Connection:
    """A trio stream driven by one engine; ``run()`` serves it until it is closed."""

    def __init__(
        self, stream: trio.SocketStream, engine: BaseConnection, owner: Owner, conn_id: int
    ) -> None:
        self.stream, self.engine, self.owner, self.conn_id = stream, engine, owner, conn_id
        self.options = o = owner.options
        self.identity: Any = None
        try:
            host, port = stream.socket.getpeername()[:2]
            self.peer: tuple[str, int] | None = (host, port)
        except (OSError, ValueError):  # gone already, or not an IP socket
            self.peer = None
        self.closed, self.below_limit, self._wake = trio.Event(), trio.Event(), trio.Event()
        self.below_limit.set()
        self._out = bytearray()
        self._done = False
        self._handshake_deadline = trio.current_time() + float(o.handshake_timeout)
        self._deadline = self._handshake_deadline
        self._scope: trio.CancelScope | None = None
        self._limiter = trio.CapacityLimiter(max(1, o.max_concurrency))
        self._waiting = 0
        self._handlers: trio.Nursery | None = None

    async def run(self) -> None:
        """Serve the connection until the engine asks to close it; then close the stream."""
        try:
            async with trio.open_nursery() as self._handlers:
                async with trio.open_nursery() as io:
                    io.start_soon(self._writer)
                    self.flush()  # a client's upgrade request
                    try:
                        await self._reader()
                    except Exception as exc:  # a fault here ends this connection only
                        self.owner.report_error(exc)
                    self._done = True  # the writer flushes what is left, within close_timeout
                    self._wake.set()
                    io.cancel_scope.deadline = trio.current_time() + self.options.close_timeout
                await self.stream.aclose()
        finally:
            self.below_limit.set()
            self.closed.set()

    def timer(self) -> float:
        """The one timer the engine asks for, on the trio clock: the handshake timeout while
        the upgrade runs, the close timeout while a close handshake is under way."""
        if self.engine.status is Status.NEW:
            self._deadline = self._handshake_deadline
        elif not self.engine.close_expected():
            self._deadline = math.inf
        elif self._deadline in (math.inf, self._handshake_deadline):
            self._deadline = trio.current_time() + self.options.close_timeout
        if self._scope is not None:
            self._scope.deadline = self._deadline
        return self._deadline

    async def _reader(self) -> None:
        engine = self.engine
        while not engine.should_close_transport():
            with trio.CancelScope(deadline=self.timer()) as self._scope:
                try:
                    data = await self.stream.receive_some(READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
            self._scope = None
            if self._deadline <= trio.current_time():
                engine.abort()  # the peer never finished the handshake or the close
            elif data:
                engine.receive_data(data)
            else:
                engine.receive_eof()
            while True:  # a framing fault held back behind a read's messages adds events
                for event in engine.events():
                    await self.owner.on_event(self, event)
                engine.apply_pending()
                if not engine.has_events():
                    break
            self.flush()

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._out:
                chunk = bytes(self._out)
                self._out.clear()
                try:
                    await self.stream.send_all(chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._done = True
                    self._out.clear()
                if len(self._out) < self.options.write_limit:
                    self.below_limit.set()
            if self._done:
                return

    def write(self, data: bytes) -> None:
        """Queue framed bytes for the writer (dropped once the connection is done)."""
        if data and not self._done:
            self._out += data
            if len(self._out) >= self.options.write_limit and self.below_limit.is_set():
                self.below_limit = trio.Event()
            self._wake.set()

    def flush(self) -> None:
        """Queue what the engine produced and re-arm the timer (a close may have started)."""
        self.write(self.engine.data_to_send())
        self.timer()

    def buffered(self) -> int:
        """Bytes queued and not yet written."""
        return len(self._out)

    def send_message(self, message: Message[Any], uuid: str) -> Awaitable[int]:
        """Send ``message`` (a sync reply when ``uuid`` is set); used by ``Sender``.
        Returns an awaitable of the payload size that waits while the buffer is full."""
        size = self.engine.send(message, uuid=uuid, is_sync=bool(uuid))
        self.flush()
        return Ready(size) if self.below_limit.is_set() else _AfterDrain(self, size)

    def close(self, code: int = 1000) -> None:
        """Start the close handshake (``run()`` ends when it completes or times out)."""
        self.engine.close(code)
        self.flush()

    async def submit(self, chain: Callable[..., Any], sender: Any, message: Message[Any]) -> None:
        """Run a handler: a plain function inline; an async one as a task, max_concurrency at
        once, or awaited here (reading waits) with max_concurrency <= 1 or max_queue waiting."""
        try:
            result = chain(sender, message)
        except Exception as exc:
            return self._failed(exc, message)
        if not inspect.isawaitable(result):
            return None
        o = self.options
        if o.max_concurrency <= 1 or self._waiting >= getattr(o, "max_queue", 1024):
            return await self._await(result, message, None)
        assert self._handlers is not None
        self._waiting += 1
        self._handlers.start_soon(self._await, result, message, self._limiter)
        return None

    async def _await(
        self, result: Awaitable[Any], message: Message[Any], limiter: trio.CapacityLimiter | None
    ) -> None:
        try:
            if limiter is None:
                await result
            else:
                async with limiter:
                    self._waiting -= 1
                    await result
        except Exception as exc:
            self._failed(exc, message)

    def _failed(self, exc: BaseException, message: Message[Any]) -> None:
        err = HandlerError(f"handler for {message.kind} raised {type(exc).__name__}: {exc}")
        err.__cause__ = exc
        self.owner.report_error(err)


class NurseryContext:
    """``async with`` holds a nursery for the endpoint's tasks (``_enter``/``_leave`` hook in)."""

    _nursery: trio.Nursery | None = None
    _nursery_cm: Any = None

    async def _enter(self, nursery: trio.Nursery) -> None: ...

    async def _leave(self) -> None: ...

    async def __aenter__(self) -> Any:
        self._nursery_cm = trio.open_nursery()
        self._nursery = nursery = await self._nursery_cm.__aenter__()
        try:
            await self._enter(nursery)
        except BaseException:
            await self._stop_nursery()
            raise  # the caller's error as it is, not wrapped in an exception group
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        try:
            await self._leave()
        finally:
            await self._stop_nursery()
        return None

    async def _stop_nursery(self) -> None:
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()  # anything still running past the close
        self._nursery = None
        await self._nursery_cm.__aexit__(None, None, None)
