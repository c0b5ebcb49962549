"""One server-side TCP connection: drives a ServerConnection engine from asyncio."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import TYPE_CHECKING, Any, cast

from goomerang_proto import (
    Closing,
    GoomerangError,
    Message,
    NotRunning,
    ServerConnection,
    Status,
)
from goomerang_proto import events as ev
from goomerang_proto.errors import UnknownKind

from ..authorization import ERROR_REPLIES, error_message
from ..awaitables import AfterDrain, Ready
from ..http import AuthRejected, Rejection, Request, Response, to_response
from ..sender import Sender
from .dispatch import HandlerRunner

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from .server import Server

_MessageReceived = ev.MessageReceived
_SyncRequestReceived = ev.SyncRequestReceived


class ServerProtocol(asyncio.Protocol):
    """asyncio protocol for one accepted connection."""

    def __init__(self, server: Server, conn_id: int) -> None:
        self.server = server
        self.conn_id = conn_id
        opts = server.options
        self.engine = ServerConnection(
            registry=server.router.registry,
            tls=server.tls is not None,
            max_message_size=opts.max_message_size,
            max_request_size=opts.max_request_size,
            auto_accept=server.needs_admission() is False,
            clock=time.time_ns,
        )
        self.engine.on_message = self._on_message
        self._resolve = server.router.resolve
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] | None = None
        self.identity: Any = None
        self.error_replies = False  # negotiated in the upgrade (see authorization)
        self.outgoing_limit = opts.max_message_size  # checked by Sender.send
        self.draining = False  # set by shutdown: no new request starts
        self.sender = Sender(self, "")
        self.runner = HandlerRunner(
            opts.max_concurrency,
            server.report_error,
            server.worker_started if server.counts_workers() else None,
            server.worker_finished if server.counts_workers() else None,
        )
        self.runner.on_progress = self._maybe_resume_reading
        self.closed = asyncio.get_running_loop().create_future()
        self.websocket = False
        self._in_batch = False
        self._fanout_pending = False
        self._flush_pending = False
        self._paused = False
        self._reading_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._awaiting_pong = False
        self._side_tasks: set[asyncio.Future[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._max_queue = opts.max_queue

    # ------------------------------------------------------------ transport
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = (str(peer[0]), int(peer[1]))
        opts = self.server.options
        transport.set_write_buffer_limits(high=opts.write_limit)
        self._arm("handshake", opts.handshake_timeout, self._handshake_timeout)
        self.server.tcp_opened(self)

    def data_received(self, data: bytes) -> None:
        server = self.server
        engine = self.engine
        self._in_batch = server.in_batch = True
        try:
            engine.receive_data(data)
            if engine.has_events() or self._reading_paused:
                self._process()
        finally:
            self._in_batch = server.in_batch = False
        self._flush()
        if server._dirty:
            server.flush_dirty()
        if not self._reading_paused and self.runner.backlog() > self._max_queue:
            self._reading_paused = True
            if self.transport is not None:
                self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self.engine.receive_eof()
        self._process()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.engine.status is not Status.CLOSED:
            self.engine.receive_eof()
            self._process()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self.server.tcp_closed(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # --------------------------------------------------------------- events
    def _process(self) -> None:
        events = self.engine.events()
        while events:
            self._dispatch(events)
            events = self.engine.events()
        if self._reading_paused:
            self._maybe_resume_reading()

    def _maybe_resume_reading(self) -> None:
        if self._reading_paused and self.runner.backlog() <= self.server.options.max_queue // 2:
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()

    def _on_message(self, message: Message[Any]) -> None:
        """The engine's direct delivery of a message or sync request (the hot path)."""
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
        if self.engine.status is Status.RUNNING and not self.server._is_closed:
            text = f"the handler for {message.kind} failed"  # no internals leak to the peer
            self.send_message(error_message("handler-error", text), message.uuid)

    def stop_reading(self) -> None:
        """Shutdown, step 1: read no more requests (handlers already started go on)."""
        self.draining = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_for_close(self) -> None:
        """Shutdown, step 4: read again, for the peer's Close answer only."""
        self.runner.cancel()  # anything read from now on is dropped, never started
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def subscribe_topic(self, topic: str) -> None:
        """Put this connection in ``topic`` (``sender.subscribe``)."""
        self.server.subscribe(topic, self)

    def unsubscribe_topic(self, topic: str) -> None:
        """Take this connection out of ``topic`` (``sender.unsubscribe``)."""
        self.server.unsubscribe(topic, self)

    def _dispatch(self, events: list[ev.Event]) -> None:
        for event in events:
            cls = type(event)
            if cls is _MessageReceived or cls is _SyncRequestReceived:
                self._on_message(event.message)  # type: ignore[attr-defined]
            else:
                self._other_event(event)

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
        elif isinstance(event, ev.PongReceived):
            self._awaiting_pong = False
            self._cancel("ping_timeout")
        elif isinstance(event, ev.PingReceived):
            pass
        elif isinstance(event, ev.ErrorOccurred):
            server.report_error(event.error)
            error = event.error
            if isinstance(error, UnknownKind) and error.uuid and self.error_replies:
                text = f"no handler for {error.kind}"  # the kind is not even registered
                self.send_message(error_message("no-handler", text), error.uuid)
        elif isinstance(event, ev.Connected):
            self.websocket = True
            self.error_replies = ERROR_REPLIES in self.engine.extensions
            self._cancel("handshake")
            server.ws_opened(self)
            self._schedule_ping()
        elif isinstance(event, ev.HttpRequest):
            self._cancel("handshake")
            self._spawn(self._serve_http(event))
        elif isinstance(event, ev.HandshakeRequest):
            self._cancel("handshake")
            if server.authenticate is None:
                self._finish_admission(server.admission_check(self._request_from(event)))
            else:
                self._spawn(self._admit(event))
        elif isinstance(event, ev.ConnectionClosed):
            self._cancel("close")
            if event.error is not None and self.websocket:
                server.report_error(event.error)
            if self.websocket:
                server.ws_closed(self)

    # ------------------------------------------------------------- sending
    def send_message(self, message: Message[Any], uuid: str) -> Awaitable[int]:
        """Write ``message`` (a reply when ``uuid`` is set); used by Sender."""
        if self.server._is_closed:
            raise NotRunning("server is closed: handlers cannot send any more")
        engine = self.engine
        if engine.status is Status.CLOSING:
            raise Closing("connection is closing: no new messages are accepted")
        size = engine.send(message, uuid=uuid, is_sync=bool(uuid))
        metrics = self.server.metrics
        if metrics is not None:
            metrics.message_sent(message.kind, size, 0.0)
        if not self._in_batch:
            self._schedule_flush()
        if self._paused:
            return AfterDrain(self._drain_future(), size)
        return Ready(size)

    def write_prepared(self, frame: bytes, defer: bool = False) -> bool:
        """Write a shared prepared frame; False when the connection cannot take it.

        With ``defer`` the frame is queued and written by ``flush_fanout``
        once the server has handled the current read (see Server.flush_dirty).
        """
        engine = self.engine
        if engine.status is not Status.RUNNING or self.transport is None:
            return False
        engine.send_prepared(frame)
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
        self._flush()
        transport = self.transport
        limit = self.server.options.slow_client_limit
        if limit and transport is not None and transport.get_write_buffer_size() > limit:
            self.server.report_error(
                GoomerangError(
                    f"connection {self.conn_id} ({self.peer}) is too slow: write buffer over "
                    f"{limit} bytes; closing it with {self.server.options.slow_client_code}"
                )
            )
            self.close(self.server.options.slow_client_code, "too slow")
            transport.abort()

    def _drain_future(self) -> asyncio.Future[None]:
        if self._drain is None or self._drain.done():
            self._drain = self._loop.create_future()
        return self._drain

    def _schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        transport = self.transport
        if transport is None:
            return
        engine = self.engine
        data = engine.data_to_send()
        if data:
            transport.write(data)
        if engine.has_events():  # a framing fault found earlier is applied on output
            self._process()
            data = engine.data_to_send()
            if data:
                transport.write(data)
        if engine.status is not Status.RUNNING:  # neither can be true while RUNNING
            if engine.should_close_transport():
                transport.close()
            elif engine.close_expected() and "close" not in self._timers:
                self._arm("close", self.server.options.close_timeout, self._close_timeout)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake with ``code``."""
        self.engine.close(code, reason)
        self._process()
        self._flush()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # --------------------------------------------------------------- timers
    def _arm(self, name: str, delay: float | None, fn: Any) -> None:
        if delay is None or delay <= 0:
            return
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        self._timers[name] = self._loop.call_later(delay, fn)

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _handshake_timeout(self) -> None:
        self._timers.pop("handshake", None)
        if self.engine.status is Status.NEW and self.transport is not None:
            self.server.report_error(
                GoomerangError(f"handshake from {self.peer} not completed in time; closing")
            )
            self.transport.abort()

    def _close_timeout(self) -> None:
        self._timers.pop("close", None)
        self.engine.abort()
        self._process()
        if self.transport is not None:
            self.transport.abort()

    def _schedule_ping(self) -> None:
        interval = self.server.options.ping_interval
        if interval:
            self._arm("ping", interval, self._send_ping)

    def _send_ping(self) -> None:
        self._timers.pop("ping", None)
        if self.engine.status is not Status.RUNNING:
            return
        self.engine.ping(b"ping")
        self._flush()
        if not self._awaiting_pong:
            self._awaiting_pong = True
            self._arm("ping_timeout", self.server.options.ping_timeout, self._ping_timeout)
        self._schedule_ping()

    def _ping_timeout(self) -> None:
        self._timers.pop("ping_timeout", None)
        self.server.report_error(
            GoomerangError(f"connection {self.conn_id} ({self.peer}) did not answer pings; closed")
        )
        self.engine.abort()
        self._process()
        if self.transport is not None:
            self.transport.abort()

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
        if self.engine.status is not Status.NEW or self.transport is None:
            return
        self.engine.send_http_response(response.status, response.all_headers(), response.body)
        if self.engine.status is Status.NEW:
            # keep-alive: the next request gets the same deadline (slowloris guard)
            self._arm("handshake", self.server.options.handshake_timeout, self._handshake_timeout)
        self._process()
        self._flush()

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
        if self.engine.status is not Status.NEW or self.transport is None:
            return
        if rejection is not None:
            self.engine.reject(rejection.status, rejection.body)
        else:
            self.engine.accept()
        if not self._in_batch:
            self._process()
            self._flush()
