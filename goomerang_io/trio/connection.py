"""One goomerang connection on trio: the driver shared by the trio ``Server`` and ``Client``.

It follows the engine's loop contract (:mod:`goomerang_proto.connection`): feed
each read with ``now = trio.current_time()``, hand the events to the owner once
``receive_data`` returned (then ``apply_pending`` and the events again), write
``data_to_send()`` and report the unsent bytes, pause reading while
``should_read()`` is False, let ``await send`` wait until ``is_writable()``, keep
one timer at ``get_timer()`` and close or abort the stream when the engine says
so. Deadlines and flow-control rules live in the engine.

Tasks. ``run()`` holds a nursery for the handlers and, inside it, the reader
(its own task; it also serves the timer, as the deadline of its read) and a
writer. Sends from any task of the trio run go to the engine and the write
buffer and wake the writer, so a plain-function handler may call
``sender.send(...)`` without ``await``. ``run()`` returns once the stream is
closed and the connection's handlers have finished.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from goomerang_proto import BaseConnection, Message
from goomerang_proto import events as ev
from goomerang_proto.message import held_size

from ..awaitables import AfterWait, Ready
from ..handling.handlers import Job, ending_send, handler_error
from ..sender import Sender

READ_SIZE = 256 * 1024
DEFAULT_QUEUE_BYTES = 4 * 1024 * 1024  # ServerOptions.max_queue_bytes (trio: fixed)


class Owner(Protocol):
    """What a connection needs of the server or client that owns it."""

    options: Any  # ServerOptions or ClientOptions

    def on_event(self, conn: Connection, event: ev.Event) -> Job | None: ...

    def report_error(self, exc: BaseException) -> None: ...


class Connection:
    """A trio stream driven by one engine; ``run()`` serves it until it is closed.

    ``in_response``: sends through ``send_message`` answer the peer (a server's
    handlers), so the engine pauses reading when they pile up."""

    def __init__(
        self,
        stream: trio.SocketStream,
        engine: BaseConnection,
        owner: Owner,
        conn_id: int,
        in_response: bool = False,
    ) -> None:
        self.stream, self.engine, self.owner, self.conn_id = stream, engine, owner, conn_id
        self.options, self.in_response = owner.options, in_response
        self.identity: Any = None
        self.sender = Sender(self)
        self.error_replies = False  # the peer negotiated error replies (server side)
        self.subscriptions: set[tuple[str, str]] = set()  # (topic, group) held (server side)
        try:
            host, port = stream.socket.getpeername()[:2]
            self.peer: tuple[str, int] | None = (host, port)
        except (OSError, ValueError):  # gone already, or not an IP socket
            self.peer = None
        self.closed, self.writable, self._wake = trio.Event(), trio.Event(), trio.Event()
        self.stream_closed = trio.Event()  # set before ``closed``: handlers may still run
        self._reader_task: trio.lowlevel.Task | None = None
        self.writable.set()
        self._readable = trio.Event()
        self._out = bytearray()
        self._inflight = 0
        self._scope: trio.CancelScope | None = None
        self._limiter = trio.CapacityLimiter(max(1, self.options.max_concurrency))
        self._waiting = 0  # handler tasks waiting for a max_concurrency slot
        self._waiting_bytes = 0  # what they hold (held_size): reading waits past the bound
        self._handlers: trio.Nursery | None = None

    async def run(self) -> None:
        """Serve the connection until the engine asks to close or abort it; then close."""
        engine = self.engine
        try:
            async with trio.open_nursery() as self._handlers:
                async with trio.open_nursery() as io:
                    io.start_soon(self._writer)
                    self.flush()  # a client's upgrade request
                    try:
                        await self._reader()
                    except Exception as exc:  # a fault here ends this connection only
                        self.owner.report_error(exc)
                        engine.abort()
                    if engine.should_abort_transport():
                        io.cancel_scope.cancel()  # drop what is unsent
                    else:  # write what is left, within the engine's close deadline
                        at = engine.get_timer()
                        at = trio.current_time() + self.options.close_timeout if at is None else at
                        io.cancel_scope.deadline = at
                        self._wake.set()
                await self.stream.aclose()
                engine.transport_closed()
                await self._process()
                self.stream_closed.set()
        finally:
            self.writable.set()
            self.stream_closed.set()
            self.closed.set()

    def runs(self, task: trio.lowlevel.Task) -> bool:
        """Whether ``task`` runs this connection's handlers (its reader runs them inline)."""
        nursery = self._handlers
        return task is self._reader_task or (nursery is not None and task in nursery.child_tasks)

    async def wait_stream_closed(self, timeout: float) -> None:
        """Wait (``timeout`` seconds at most) until the stream is closed; a handler the
        reader runs inline returns at once (the peer's answer is read after it)."""
        if trio.lowlevel.current_task() is self._reader_task:
            return
        with trio.move_on_after(timeout):
            await self.stream_closed.wait()

    def timer(self) -> float:
        """The one timer the engine asks for (``get_timer()``, trio clock; inf: none). It is
        the deadline of the reader's wait, re-armed whenever the engine's output changes."""
        at = self.engine.get_timer()
        deadline = math.inf if at is None else at
        if self._scope is not None:
            self._scope.deadline = deadline
        return deadline

    async def _reader(self) -> None:
        engine = self.engine
        self._reader_task = trio.lowlevel.current_task()
        while not (engine.should_abort_transport() or engine.should_close_transport()):
            data: bytes | None = None
            with trio.CancelScope(deadline=self.timer()) as self._scope:
                if engine.should_read():
                    try:
                        data = await self.stream.receive_some(READ_SIZE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        data = b""
                else:  # our replies pile up: let the peer's TCP window throttle it
                    self._readable = trio.Event()
                    await self._readable.wait()
            self._scope = None
            now = trio.current_time()
            if data:
                engine.receive_data(data, now)
            elif data is not None:
                engine.receive_eof(now)
            elif now >= self.timer():
                engine.handle_timer(now)
            await self._process()
            engine.apply_pending()
            await self._process()
            self.flush()

    async def _process(self) -> None:
        while self.engine.has_events():
            for event in self.engine.events():
                job = self.owner.on_event(self, event)
                if job is not None:
                    await self.submit(*job)

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._out:
                chunk = bytes(self._out)
                self._out.clear()
                self._inflight = len(chunk)  # still unsent until send_all returns
                try:
                    await self.stream.send_all(chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self.engine.abort()
                    self._poke()
                    return
                self._inflight = 0
                self.flush()  # report the drained buffer; a held Pong may go out now
            if self.engine.should_close_transport():
                return

    def _poke(self) -> None:
        """Wake the reader: the engine may have events or a new state to act on."""
        if self._scope is not None:
            self._scope.cancel()

    def flush(self) -> None:
        """Queue what the engine produced, report the unsent bytes, apply the engine's
        flow-control state and re-arm its timer."""
        engine = self.engine
        data = engine.data_to_send()
        if data:
            self._out += data
            self._wake.set()
        engine.set_transport_buffer_size(len(self._out) + self._inflight)
        data = engine.data_to_send()  # a Pong held while above high water
        if data:
            self._out += data
            self._wake.set()
        if engine.is_writable():
            self.writable.set()
        elif self.writable.is_set():
            self.writable = trio.Event()
        if engine.should_read():
            self._readable.set()
        if engine.has_events() or engine.should_abort_transport():
            self._poke()
        self.timer()

    def write_prepared(self, frame: bytes, *, in_response: bool = False) -> bool:
        """Queue a frame made once for many connections (fan-out); False when not sent.

        ``in_response``: this connection commanded the fan-out (its own publish
        or broadcast coming back to it), so the copy counts as output its input
        caused and pauses its reading above high water, as on asyncio.
        """
        engine = self.engine
        sent = bool(engine.send_prepared(frame, in_response=in_response))  # type: ignore[attr-defined]
        self.flush()
        return sent

    def send_message(
        self, message: Message[Any], uuid: str, in_response: bool | None = None
    ) -> Awaitable[int]:
        """Send ``message`` (a sync reply when ``uuid`` is set); used by ``Sender``.
        Returns an awaitable of the payload size that waits while not writable.
        ``in_response`` (default: the connection's) says the peer's input caused it."""
        engine = self.engine
        if in_response is None:
            in_response = self.in_response
        size = engine.send(message, uuid=uuid, is_sync=bool(uuid), in_response=in_response)
        self.flush()
        return Ready(size) if engine.is_writable() else AfterWait(self.writable.wait, size)

    def abort(self) -> None:
        """Drop the connection now: the stream is closed and ``run()`` ends."""
        self.engine.abort()
        self.flush()
        self._poke()

    def close(self, code: int = 1000) -> None:
        """Start the close handshake (``run()`` ends when it completes or times out)."""
        self.engine.close(code, now=trio.current_time())
        self.flush()
        self._poke()

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
        if (
            o.max_concurrency <= 1
            or self._waiting >= getattr(o, "max_queue", 1024)
            or self._waiting_bytes >= getattr(o, "max_queue_bytes", DEFAULT_QUEUE_BYTES)
        ):
            return await self._await(result, message, None, 0)
        assert self._handlers is not None
        size = held_size(message)
        self._waiting += 1
        self._waiting_bytes += size
        self._handlers.start_soon(self._await, result, message, self._limiter, size)
        return None

    async def _await(
        self,
        result: Awaitable[Any],
        message: Message[Any],
        limiter: trio.CapacityLimiter | None,
        size: int,
    ) -> None:
        try:
            if limiter is None:
                await result
            else:
                async with limiter:
                    self._waiting -= 1
                    self._waiting_bytes -= size
                    await result
        except Exception as exc:
            self._failed(exc, message)

    def _failed(self, exc: BaseException, message: Message[Any]) -> None:
        if not ending_send(exc):
            self.owner.report_error(handler_error(exc, message))


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
