"""One server-side TCP connection: a ServerConnection engine on the asyncio driver."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from goomerang_proto import (
    GoomerangError,
    HandshakeError,
    Message,
    NotRunning,
    Router,
    ServerConnection,
    status,
)
from goomerang_proto import events as ev
from goomerang_proto.errors import UnknownKind
from goomerang_proto.instances import new_instance

from ..authorization import ERROR_REPLIES, error_message
from ..awaitables import READY_SIZES as _READY_SIZES
from ..awaitables import AfterDrain, Ready
from ..engines import server_engine
from ..http import AuthRejected, Rejection, Request, Response, RouteHandler, to_response
from ..options import ServerOptions
from ..sender import Sender
from .connection import Connection
from .dispatch import HandlerRunner

# Final module names: the compiled build holds them in C statics (a plain global,
# imported names included, is a dict lookup per use there)
_MessageReceived: Final = ev.MessageReceived
_SyncRequestReceived: Final = ev.SyncRequestReceived
_new_sender: Final = new_instance  # a sync request's Sender is built without __init__
_SENDER: Final = Sender
READY_SIZES: Final = _READY_SIZES
NEW: Final = status.NEW
RUNNING: Final = status.RUNNING


class ServerSide(Protocol):
    """What a server connection needs from its server (``Server`` provides it).

    Written as a protocol so that this module does not import the server's
    (the server imports this one): no import cycle, no reach-in.
    """

    options: ServerOptions
    router: Router
    tls: Any
    metrics: Any
    routes: dict[str, RouteHandler]
    authenticate: Callable[[Request], Any] | None
    in_batch: bool
    dirty: list[ServerProtocol]  # read after every read: an attribute, not a call

    def needs_admission(self) -> bool: ...
    def admission_check(self, request: Request) -> Rejection | None: ...
    def report_error(self, exc: BaseException) -> None: ...
    def counts_workers(self) -> bool: ...
    def worker_started(self) -> None: ...
    def worker_finished(self) -> None: ...

    ended: bool  # read on every send: an attribute, not a call (Server.is_closed())

    def is_closed(self) -> bool: ...
    def tcp_opened(self, conn: ServerProtocol) -> None: ...
    def tcp_closed(self, conn: ServerProtocol) -> None: ...
    def ws_opened(self, conn: ServerProtocol) -> None: ...
    def ws_ended(self, conn: ServerProtocol) -> None: ...
    def has_dirty(self) -> bool: ...
    def mark_dirty(self, conn: ServerProtocol) -> None: ...
    def flush_dirty(self) -> None: ...
    def client_broadcast(self, message: Message[Any], conn: ServerProtocol) -> None: ...
    def client_publish(self, topic: str, message: Message[Any], conn: ServerProtocol) -> None: ...
    def subscribe(self, topic: str, conn: ServerProtocol) -> None: ...
    def unsubscribe(self, topic: str, conn: ServerProtocol) -> None: ...
    def client_subscribe(self, topic: str, group: str, conn: ServerProtocol) -> None: ...
    def client_unsubscribe(self, topic: str, group: str, conn: ServerProtocol) -> None: ...


class ServerProtocol(Connection):
    """The server's side of one accepted connection (created at accept, before TLS)."""

    def __init__(self, server: ServerSide, conn_id: int) -> None:
        self.server = server
        self.conn_id = conn_id
        opts = server.options
        loop = asyncio.get_running_loop()
        engine = server_engine(
            opts,
            server.router.registry,
            loop.time(),
            tls=server.tls is not None,
            auto_accept=server.needs_admission() is False,
        )
        super().__init__(engine)
        self.server_engine: ServerConnection = engine
        """``engine`` with its server type (the compiled build cannot narrow ``engine``'s)."""
        self._resolve = server.router.resolver()
        self.identity: Any = None
        self.error_replies = False  # negotiated in the upgrade (see authorization)
        self.draining = False  # set by shutdown: no new request starts
        self.hold_reads = False  # shutdown: read nothing until the close step
        self.sender = Sender(self, "")
        self.runner = HandlerRunner(
            opts.max_concurrency,
            server.report_error,
            server.worker_started if server.counts_workers() else None,
            server.worker_finished if server.counts_workers() else None,
        )
        self.runner.on_progress = self._on_progress
        self.websocket = False
        self._fanout_pending = False
        self._side_tasks: set[asyncio.Future[None]] = set()
        self.subscriptions: set[tuple[str, str]] = set()  # bounded by max_subscriptions
        self._max_queue = opts.max_queue
        self._max_queue_bytes = opts.max_queue_bytes

    # ------------------------------------------------------------ transport
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server.tcp_opened(self)

    def after_read(self) -> None:
        server = self.server
        if server.dirty:
            server.flush_dirty()

    def want_read(self) -> bool:
        if self.hold_reads:
            return False
        return self.runner.allows_reading(
            self._max_queue, self._max_queue_bytes, self._reading_paused
        )

    def lost(self) -> None:
        for task in list(self._side_tasks):
            task.cancel()
        self.server.tcp_closed(self)

    def _on_progress(self) -> None:
        if self._reading_paused:
            self.flush()

    # --------------------------------------------------------------- events
    def _on_message(self, message: Message[Any]) -> None:
        """A message or sync request the engine decoded: run its handler chain."""
        if self.draining:
            return  # the server is shutting down: no new request starts
        chain = self._resolve(message.kind)
        if chain is None:
            what = "sync request kind" if message.is_sync else "kind"
            tail = "" if message.is_sync else " (message dropped)"
            error = GoomerangError(f"no handler for {what} {message.kind!r}{tail}")
            self.server.report_error(error)
            if message.is_sync and self.error_replies:
                text = f"no handler for {message.kind}"
                self.send_message(error_message("no-handler", text), message.uuid)
        elif message.is_sync:
            if self.error_replies:
                chain = self._replying_errors(chain)
            self.runner.submit(chain, Sender(self, message.uuid), message)
        else:
            self.runner.submit(chain, self.sender, message)

    def _replying_errors(self, chain: Any) -> Any:
        """Wrap a sync request's handler chain: when it raises, the peer gets an error reply."""

        def run(sender: Sender, message: Message[Any]) -> Any:
            try:
                result = chain(sender, message)
            except Exception:
                self._error_reply(message)
                raise
            if result is None or type(result) is Ready or not inspect.isawaitable(result):
                return result
            return self._await_replying_errors(result, message)

        return run

    async def _await_replying_errors(self, result: Awaitable[Any], message: Message[Any]) -> Any:
        try:
            return await result
        except asyncio.CancelledError:
            raise
        except Exception:
            self._error_reply(message)
            raise

    def _error_reply(self, message: Message[Any]) -> None:
        if self.engine.status is RUNNING and not self.server.is_closed():
            text = f"the handler for {message.kind} failed"  # no internals leak to the peer
            self.send_message(error_message("handler-error", text), message.uuid)

    def stop_reading(self) -> None:
        """Shutdown, step 1: read no more requests (handlers already started go on)."""
        self.draining = True
        self.hold_reads = True
        self.flush()  # applies want_read(): reading pauses

    def resume_for_close(self, spare: asyncio.Task[Any] | None = None) -> None:
        """Shutdown, step 4: read again, for the peer's Close answer only (``spare``: the
        handler task that runs the shutdown, left running)."""
        self.runner.cancel(spare)  # anything read from now on is dropped, never started
        self.hold_reads = False
        self.flush()

    def subscribe_topic(self, topic: str) -> None:
        """Put this connection in ``topic`` (``sender.subscribe``)."""
        self.server.subscribe(topic, self)

    def unsubscribe_topic(self, topic: str) -> None:
        """Take this connection out of ``topic`` (``sender.unsubscribe``)."""
        self.server.unsubscribe(topic, self)

    def handle_events(self, events: list[ev.Event]) -> None:
        server = self.server
        server.in_batch = self._in_batch
        try:
            resolve = self._resolve
            for event in events:
                cls = type(event)
                if cls is _MessageReceived and not self.draining:
                    # _on_message's common case inlined: a plain message, a handler for it
                    message = event.message  # type: ignore[attr-defined]
                    chain = resolve(message.kind)
                    if chain is not None:
                        self.runner.submit(chain, self.sender, message)
                    else:
                        self._on_message(message)
                elif cls is _SyncRequestReceived and not self.draining:
                    # the same for a sync request (error replies off: no wrapper)
                    message = event.message  # type: ignore[attr-defined]
                    chain = resolve(message.kind)
                    if chain is not None and not self.error_replies:
                        # Sender(self, message.uuid), without the __init__ call (same slots set)
                        sender: Sender = _new_sender(_SENDER)
                        sender._conn = self
                        sender.uuid = message.uuid
                        self.runner.submit(chain, sender, message)
                    else:
                        self._on_message(message)
                elif cls is _MessageReceived or cls is _SyncRequestReceived:
                    self._on_message(event.message)  # type: ignore[attr-defined]
                else:
                    self._other_event(event)
        finally:
            server.in_batch = False

    def _other_event(self, event: ev.Event) -> None:
        server = self.server
        if isinstance(event, ev.BroadcastRequested):
            server.client_broadcast(event.message, self)
        elif isinstance(event, ev.PublishRequested):
            server.client_publish(event.topic, event.message, self)
        elif isinstance(event, ev.SubscribeRequested):
            server.client_subscribe(event.topic, event.group, self)
        elif isinstance(event, ev.UnsubscribeRequested):
            server.client_unsubscribe(event.topic, event.group, self)
        elif isinstance(event, ev.PingReceived | ev.PongReceived):
            pass
        elif isinstance(event, ev.ErrorOccurred):
            server.report_error(event.error)
            error = event.error
            if isinstance(error, UnknownKind) and error.uuid and self.error_replies:
                text = f"no handler for {error.kind}"  # the kind is not even registered
                self.send_message(error_message("no-handler", text), error.uuid)
        elif isinstance(event, ev.Connected):
            self.websocket = True
            self.error_replies = ERROR_REPLIES in self.server_engine.extensions
            server.ws_opened(self)
        elif isinstance(event, ev.HttpRequest):
            self._spawn(self._serve_http(event))
        elif isinstance(event, ev.HandshakeRequest):
            if server.authenticate is None:
                self._finish_admission(server.admission_check(self._request_from(event)))
            else:
                self._spawn(self._admit(event))
        elif isinstance(event, ev.ConnectionClosed):
            if event.error is not None and (
                self.websocket or isinstance(event.error, HandshakeError)
            ):
                server.report_error(
                    GoomerangError(f"connection {self.conn_id} ({self.peer}): {event.error}")
                    if not self.websocket
                    else event.error
                )
            if self.websocket:
                server.ws_ended(self)

    # ------------------------------------------------------------- sending
    def send_message(self, message: Message[Any], uuid: str) -> Awaitable[int]:
        """Write ``message`` (a reply when ``uuid`` is set); used by Sender.

        Handler output answers the peer: above the high-water mark it pauses
        reading from the peer, and ``await`` waits for the drain.
        """
        server = self.server
        if server.ended:
            raise NotRunning("server is closed: handlers cannot send any more")
        engine = self.engine
        # write_message, inlined (the reply path: one call less per message); the
        # engine raises Closing while CLOSING and NotRunning once CLOSED
        try:
            size = engine.send(message, uuid=uuid, is_sync=uuid != "", in_response=True)
        finally:
            if not self._in_batch and not self._flush_pending:
                self.schedule_flush()
        metrics = server.metrics
        if metrics is not None:
            metrics.message_sent(message.kind, size, 0.0)
        if engine.is_writable():
            return READY_SIZES[size] if size < 1024 else Ready(size)
        return AfterDrain(self.drain_future(), size)

    def write_prepared(self, frame: bytes, defer: bool = False) -> bool:
        """Write a shared prepared frame; False when the connection cannot take it.

        With ``defer`` the frame is queued and written by ``flush_fanout``
        once the server has handled the current read (see Server.flush_dirty).
        A target over the output hard cap (``slow_client_limit``) is closed
        with ``slow_client_code`` and dropped.
        """
        engine = self.server_engine
        if engine.status is not RUNNING or self.transport is None:
            return False
        if not engine.send_prepared(frame, in_response=self._in_batch):
            self._too_slow()
            self.flush()
            return False
        if defer:
            if not self._fanout_pending:
                self._fanout_pending = True
                self.server.mark_dirty(self)
            return True
        self.flush_fanout()
        return True

    def flush_fanout(self) -> None:
        """Write queued frames, then close the connection if it is too slow to keep up."""
        self._fanout_pending = False
        engine = self.engine
        transport = self.transport
        # Fast path, per target of a fan-out: RUNNING, writable, reading on, nobody
        # waiting to send, no event pending. Writing a prepared frame changes no
        # deadline and no handler backlog, so only the engine's writability can
        # change: the full flush runs when it did (or when anything else is set).
        if (
            transport is not None
            and engine.status is RUNNING
            and not self._reading_paused
            and self._drain is None
            and engine.is_writable()
            and not engine.has_events()
        ):
            data = engine.data_to_send()
            if data:
                transport.write(data)
                size = transport.get_write_buffer_size()
                engine.set_transport_buffer_size(size)
                limit = self.server.options.slow_client_limit
                if engine.is_writable() and not (limit and size > limit):
                    return
            else:
                return
        self.flush()
        limit = self.server.options.slow_client_limit
        if limit and engine.status is RUNNING and engine.buffered_amount > limit:
            self._too_slow()
            engine.fail(self.server.options.slow_client_code, "too slow")
            engine.abort()
            self.process()
            self.flush()

    def _too_slow(self) -> None:
        limit = self.server.options.slow_client_limit
        self.server.report_error(
            GoomerangError(
                f"connection {self.conn_id} ({self.peer}) is too slow: write buffer over "
                f"{limit} bytes; closing it with {self.server.options.slow_client_code}"
            )
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # ------------------------------------------------------------ HTTP side
    def _request_from(self, event: ev.HttpRequest | ev.HandshakeRequest) -> Request:
        if isinstance(event, ev.HttpRequest):
            return Request(
                event.method, event.path, event.query, event.headers, event.body, self.peer
            )
        return Request("GET", event.path, event.query, event.headers, b"", self.peer)

    async def _serve_http(self, event: ev.HttpRequest) -> None:
        handler = self.server.routes.get(event.path)
        if handler is None:
            response = Response(404, b"not found\n")
        else:
            try:
                result = handler(self._request_from(event))
                if inspect.isawaitable(result):
                    result = await result
                response = to_response(result)
            except Exception as exc:
                self.server.report_error(exc)
                response = Response(500, b"internal server error\n")
        if self.engine.status is not NEW or self.transport is None:
            return
        self.server_engine.send_http_response(
            response.status, response.all_headers(), response.body, now=self._loop.time()
        )
        self.process()
        self.flush()

    async def _admit(self, event: ev.HandshakeRequest) -> None:
        server = self.server
        request = self._request_from(event)
        rejection = server.admission_check(request)
        if rejection is None and server.authenticate is not None:
            try:
                result = server.authenticate(request)
                if inspect.isawaitable(result):
                    result = await result
                if isinstance(result, Rejection):
                    rejection = result
                elif result is None:  # admitting needs an identity (or ANONYMOUS)
                    rejection = Rejection(401, b"authentication required\n")
                else:
                    self.identity = result
            except AuthRejected as exc:
                rejection = Rejection(exc.status, (exc.message + "\n").encode())
            except Exception as exc:
                server.report_error(exc)
                rejection = Rejection(500, b"authentication failed\n")
        self._finish_admission(rejection)

    def _finish_admission(self, rejection: Rejection | None) -> None:
        if self.engine.status is not NEW or self.transport is None:
            return
        if rejection is not None:
            self.server_engine.reject(rejection.status, rejection.body)
        else:
            self.server_engine.accept(now=self._loop.time())
        if not self._in_batch:
            self.process()
            self.flush()
