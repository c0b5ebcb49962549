"""The asyncio goomerang client."""

from __future__ import annotations

import asyncio
import ssl
import time
from functools import partial
from typing import Any, TypeVar, Unpack, overload

from google.protobuf.message import Message as ProtoMessage
from google.protobuf.wrappers_pb2 import StringValue

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
    SyncTimeout,
    UnknownKind,
    new_uuid,
)
from goomerang_proto import events as ev
from goomerang_proto.frames import CLEAN_CLOSE_CODES
from goomerang_proto.status import CLOSED, CLOSING, RUNNING

from ..address import parse_listen
from ..authorization import ERROR_REPLIES, error_of
from ..awaitables import AfterDrain, Ready
from ..dial import HeadersArg, UpgradeHeaders, ws_path
from ..endpoint import Endpoint
from ..engines import client_engine
from ..handling.client_events import sendable
from ..handling.pending import PendingRequests, Waiter
from ..hooks import CLIENT_HOOKS
from ..keywords import ClientKeywords
from ..options import ClientOptions
from ..reconnect import Backoff, HeldSubscriptions
from ..sender import Sender
from ..tlserrors import tls_error
from ..validate import (
    check_close_code,
    check_message,
    check_reply_class,
    check_timeout,
    check_topic,
    expect_reply,
)
from .connection import Connection
from .dispatch import HandlerRunner
from .outbox import Outbox

R = TypeVar("R", bound=ProtoMessage)


class _ClientProtocol(Connection):
    """The client's connection: the asyncio driver handing events to its Client."""

    def __init__(self, client: Client, engine: ClientConnection) -> None:
        super().__init__(engine)
        self.client = client
        self.hold_reads = False  # close(): read nothing while the handlers drain
        self.runner = client._runner
        if self.runner is not None:
            self.runner.on_progress = self._on_progress

    def want_read(self) -> bool:
        if self.hold_reads:
            return False
        if self.runner is None:
            return True
        opts = self.client.options
        return self.runner.allows_reading(
            opts.max_queue, opts.max_queue_bytes, self._reading_paused
        )

    def _on_progress(self) -> None:
        if self._reading_paused:
            self.flush()

    def handle_events(self, events: list[ev.Event]) -> None:
        on_event = self.client._on_event
        for event in events:
            on_event(self, event)

    def lost(self) -> None:
        self.client._lost(self)


def _expire(waiter: Waiter, uid: str, kind: str, timeout: float) -> None:
    """A sync request's deadline passed: its caller gets SyncTimeout (unless settled already)."""
    waiter.settle(None, SyncTimeout(f"no reply to sync request {uid} ({kind}) within {timeout} s"))


class Client(Endpoint):
    """A goomerang client: send, send_sync, broadcast, pub/sub, handlers and hooks.

    ``Client(server="127.0.0.1:8080")``; every :class:`ClientOptions` field is
    accepted as a keyword argument, plus ``tls`` (an ``ssl.SSLContext``; the
    path becomes ``/wss``), ``headers`` (extra handshake headers, e.g. a bearer
    token) and hooks (``on_error=[...]`` and the others in ``CLIENT_HOOKS``).
    """

    def __init__(
        self,
        server: str = "127.0.0.1:8080",
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        headers: HeadersArg = (),
        metrics: Any = None,
        path: str | None = None,
        **kwargs: Unpack[ClientKeywords],
    ) -> None:
        self.server = server
        self.host, self.port = parse_listen(server)
        self.tls = tls
        self.server_hostname = server_hostname
        self.path = ws_path(path, tls)
        self._headers = UpgradeHeaders(headers)
        self.extra_headers = self._headers.fixed
        self._setup(ClientOptions, CLIENT_HOOKS, Side.CLIENT, dict(kwargs), "Client")
        self.metrics = metrics
        self._engine: ClientConnection | None = None
        self._proto: _ClientProtocol | None = None
        self._pending = PendingRequests(self.options.max_pending_sync)
        self._runner: HandlerRunner | None = None
        self._loss_reported = False
        self._sender = Sender(self, "")
        self._connected: asyncio.Future[None] | None = None
        self._closed_by_user = False
        self._connecting = False  # a connect() is under way (a second one is refused)
        self._held = HeldSubscriptions()
        self._reconnect_task: asyncio.Task[None] | None = None
        self.identity: Any = None
        self.peer: tuple[str, int] | None = None
        self.conn_id = 0
        self.close_code: int | None = None
        self._error_replies = False  # the server accepted the error-replies extension
        self._draining = False  # close() waits for handlers: no new message starts one
        self._outbox = Outbox(self.report_error)

    # ------------------------------------------------------------ registry
    # ---------------------------------------------------------- connect
    async def connect(self) -> None:
        """Connect and complete the upgrade; works again after close()."""
        status = self.status
        if status is RUNNING:
            raise AlreadyRunning("client is already connected")
        if status is CLOSING:
            raise Closing("client is closing")
        if self._connecting:
            raise AlreadyRunning("connect() is already in progress")
        self._connecting = True
        self._closed_by_user = False
        try:
            await self._open()
            self.hooks.run("on_configuration", self.options)
            if self.metrics is not None:
                self.metrics.set_max_concurrency(self.options.max_concurrency)
            self._move(RUNNING)
        finally:
            self._connecting = False
        proto = self._proto
        if proto is not None and proto.closed.done():
            # the server closed right after its 101, before this coroutine resumed:
            # the loss is reported now, in Go's order (RUNNING -> CLOSING -> CLOSED)
            self._lost(proto)

    async def _open(self) -> None:
        if self.metrics is not None and not self.router.frozen:
            from ..middlewares import metrics_middleware

            self.router.prepend_middleware(metrics_middleware(self.metrics))
        if not self.router.frozen:
            self.router.register_message(StringValue)  # error replies (see authorization)
        self.router.freeze()
        loop = asyncio.get_running_loop()
        opts = self.options
        engine = client_engine(
            opts,
            self.host,
            self.port,
            self.path,
            self._headers(),
            self.router.registry,
            loop.time(),
        )
        self._engine = engine
        self._draining = False
        self._runner = HandlerRunner(
            self.options.max_concurrency,
            self.report_error,
            self._worker_started if self._counts_workers() else None,
            self._worker_finished if self._counts_workers() else None,
        )
        self._connected = loop.create_future()
        self._loss_reported = False
        timeout = self.options.handshake_timeout
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    partial(self._new_protocol, engine),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.server_hostname if self.tls is not None else None,
                )
                await self._connected
        except TimeoutError:
            self._abandon()
            raise HandshakeError(f"could not connect to {self.server} within {timeout} s") from None
        except ssl.SSLError as exc:
            self._abandon()
            raise tls_error(self.server, self.server_hostname or self.host, exc) from exc
        except OSError as exc:
            self._abandon()
            raise ConnectionLost(f"could not connect to {self.server}: {exc}") from exc
        except BaseException:  # a refused upgrade, or the caller cancelled connect()
            self._abandon()
            raise
        if self._proto is not None:
            self.peer = self._proto.peer

    def _new_protocol(self, engine: ClientConnection) -> _ClientProtocol:
        # Known as this client's connection from the start: the server's first bytes
        # (its 101, and maybe a Close and the end of TCP) may be read before
        # create_connection returns, and their events must not be taken for a stale
        # connection's.
        proto = _ClientProtocol(self, engine)
        self._proto = proto
        return proto

    def _abandon(self) -> None:
        """A failed or cancelled connect(): drop its transport; what it still reports
        (its loss) is a stale connection's, not an error of this client (the caller
        got the exception)."""
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.abort()

    def _counts_workers(self) -> bool:
        # the metrics middleware counts the concurrent workers itself
        return self.hooks.has("on_worker_start") or self.hooks.has("on_worker_end")

    def _worker_started(self) -> None:
        self.hooks.run("on_worker_start")

    def _worker_finished(self) -> None:
        self.hooks.run("on_worker_end")

    # ------------------------------------------------------------- input
    def _on_message(self, message: Message[Any]) -> None:
        """A sync reply or a message: the engine's direct delivery (the hot path)."""
        if self._error_replies and message.headers and self._server_error(message):
            return
        if message.is_sync:
            late = self._pending.reply(message)
            if late is not None:
                self.report_error(late)
            return
        if self._draining:
            return  # closing: no new handler starts
        chain = self.router.resolve(message.kind)
        if chain is None:
            self.report_error(GoomerangError(f"no handler for kind {message.kind!r}"))
        elif self._runner is not None:
            self._runner.submit(chain, self._sender, message)

    def _server_error(self, message: Message[Any]) -> bool:
        """An error reply (negotiated peers only): fail its request or report it."""
        error = error_of(message)
        if error is None:
            return False
        if not (message.uuid and self._pending.fail(message.uuid, error)):
            self.report_error(error)
        return True

    def _on_event(self, proto: _ClientProtocol, event: ev.Event) -> None:
        if isinstance(event, (ev.SyncReplyReceived, ev.MessageReceived)):
            self._on_message(event.message)
        elif isinstance(event, ev.ErrorOccurred):
            error = event.error
            if isinstance(error, UnknownKind) and error.uuid:
                self._pending.fail(error.uuid, error)  # the caller learns now, not at its timeout
            self.report_error(error)
        elif isinstance(event, ev.Connected):
            engine = self._engine
            self._error_replies = engine is not None and ERROR_REPLIES in engine.extensions
            if self._connected is not None and not self._connected.done():
                self._connected.set_result(None)
        elif isinstance(event, ev.ConnectionClosed):
            if proto is not self._proto:
                return
            self.close_code = event.code
            if self._connected is not None and not self._connected.done():
                err = event.error or HandshakeError(
                    f"connection closed during the upgrade: {event.reason}"
                )
                self._connected.set_exception(err)
                return
            if event.error is not None:
                self.report_error(event.error)
                self._loss_reported = True  # _lost() must not report the same loss again
            if self.status is RUNNING and event.by_peer:
                # Go's sequence when the server starts the close: RUNNING -> CLOSING -> CLOSED
                self._move(CLOSING)

    # ------------------------------------------------------------ output
    def _check_running(self) -> ClientConnection:
        return sendable(self.status, self._engine)

    def _flush(self) -> None:
        proto = self._proto
        if proto is not None:
            proto.schedule_flush()

    def _wait_drain(self, value: int) -> Any:
        proto = self._proto
        if proto is None or proto.engine.is_writable():
            return Ready(value)
        return AfterDrain(proto.drain_future(), value)

    def send_message(self, message: Message[Any], uuid: str) -> Any:
        """Used by the Sender given to client handlers (they may still send while closing)."""
        proto = self._proto
        if not (self._draining and proto is not None and proto.engine.status is RUNNING):
            self._check_running()
        assert self._proto is not None
        return self._proto.write_message(message, uuid, in_response=True)

    async def send(self, message: Message[Any]) -> int:
        """Send ``message`` (no reply expected); return the payload size in bytes.

        Raises TypeError for anything but a ``Message`` with str headers,
        MessageTooLarge above ``max_message_size`` and NotRunning/Closing when
        not connected (OutboxFull while reconnecting with a full outbox);
        nothing is sent then.
        """
        check_message(message)
        if self._outbox_open():
            return self._queue("send", message)
        self._check_running()
        assert self._proto is not None
        t0 = time.perf_counter()
        result = self._proto.write_message(message)
        if self.metrics is not None:
            self.metrics.message_sent(message.kind, result.value, time.perf_counter() - t0)
        return int(await result)

    @overload
    async def send_sync(
        self, message: Message[Any], timeout: float | None = 5.0
    ) -> Message[Any]: ...

    @overload
    async def send_sync(
        self, message: Message[Any], timeout: float | None = 5.0, *, reply: type[R]
    ) -> Message[R]: ...

    async def send_sync(
        self, message: Message[Any], timeout: float | None = 5.0, *, reply: type[R] | None = None
    ) -> Message[Any]:
        """Send ``message`` as a request and wait for the reply.

        With ``reply=ReplyClass`` the result is a ``Message[ReplyClass]`` (typed
        for a checker, checked at run time: another kind raises UnexpectedReply).

        ``timeout`` is in seconds (None: wait until the connection ends).
        Raises SyncTimeout when no reply came in time, RemoteError at once when
        the server answered with an error reply (no handler, handler failed),
        UnknownKind at once when the reply's kind is not registered here,
        ConnectionLost when the connection ends first; argument errors
        (TypeError/ValueError, MessageTooLarge) before anything is sent.
        """
        check_message(message)
        check_timeout(timeout)
        check_reply_class(reply)
        self._check_running()
        uid = new_uuid()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        # settled once (reply, error, end, deadline): the one call of set_result
        waiter = self._pending.open(uid, partial(fut.set_result, None))  # TooManyPending
        t0 = time.perf_counter()
        # one timer that fails the request (cheaper than asyncio.timeout's task cancel); it
        # starts before the write, so it also bounds the wait for the write buffer
        timer = (
            None
            if timeout is None
            else loop.call_later(timeout, _expire, waiter, uid, message.kind, timeout)
        )
        try:
            written = self._proto.write_message(message, uid)  # type: ignore[union-attr]
            if type(written) is AfterDrain:  # above high water: the drain, or the deadline
                await asyncio.wait((written.fut, fut), return_when=asyncio.FIRST_COMPLETED)
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            self._pending.discard(uid)
        if waiter.error is not None:
            raise waiter.error
        result = waiter.reply
        assert result is not None
        if self.metrics is not None:
            self.metrics.sync_sent(message.kind, time.perf_counter() - t0)
        return expect_reply(result, reply)

    async def broadcast(self, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to every client (this one included)."""
        check_message(message)
        if self._outbox_open():
            return self._queue("broadcast", message)
        engine = self._check_running()
        size = engine.broadcast(message)
        self._flush()
        await self._wait_drain(0)
        if self.metrics is not None:
            self.metrics.broadcast_cmd_sent(message.kind)
        return size

    async def publish(self, topic: str, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to the subscribers of ``topic``."""
        check_topic(topic)
        check_message(message)
        if self._outbox_open():
            return self._queue("publish", message, topic)
        engine = self._check_running()
        size = engine.publish(topic, message)
        self._flush()
        await self._wait_drain(0)
        if self.metrics is not None:
            self.metrics.publish_cmd_sent(topic, message.kind)
        return size

    async def subscribe(self, topic: str, group: str | None = None) -> None:
        """Subscribe to ``topic`` (re-subscribed automatically after a reconnect).

        With ``group``, join that queue group of ``topic`` instead: each
        publish to ``topic`` goes to every plain subscriber and to exactly one
        member of each group (a protocol extension, negotiated on connect).
        Raises ``TypeError`` for a non-str topic or group and ``ValueError``
        for an empty one (nothing is sent), and ``ExtensionNotNegotiated``
        for a group when the server did not accept ``queue-groups`` (the Go
        goomerang would treat it as a plain subscribe).
        """
        check_topic(topic)
        if group is not None:
            check_topic(group, "group")
        engine = self._check_running()
        engine.subscribe(topic, group)
        self._held.add(topic, group)
        self._flush()
        if self.metrics is not None:
            self.metrics.subscribe_cmd_sent(topic)

    async def unsubscribe(self, topic: str, group: str | None = None) -> None:
        """Unsubscribe from ``topic`` (or leave its queue ``group``); raises as subscribe."""
        check_topic(topic)
        if group is not None:
            check_topic(group, "group")
        engine = self._check_running()
        engine.unsubscribe(topic, group)
        self._held.discard(topic, group)
        self._flush()
        if self.metrics is not None:
            self.metrics.unsubscribe_cmd_sent(topic)

    def subscribe_topic(self, topic: str) -> None:
        """``sender.subscribe`` in a client handler: subscribe without awaiting."""
        engine = self._check_running()
        engine.subscribe(topic)
        self._held.add(topic)
        self._flush()

    def unsubscribe_topic(self, topic: str) -> None:
        """``sender.unsubscribe`` in a client handler."""
        engine = self._check_running()
        engine.unsubscribe(topic)
        self._held.discard(topic)
        self._flush()

    # ------------------------------------------------------------- close
    async def close(self, code: int = 1000) -> None:
        """Close gracefully, within ``close_timeout`` seconds for each step.

        Stops reading, lets running handlers finish (their sends go out),
        cancels those still running after ``close_timeout``, then sends the
        Close frame (``code``, default 1000) and waits up to ``close_timeout``
        for the answer. Pending ``send_sync`` calls fail with ConnectionLost.
        Raises NotRunning when not RUNNING; TypeError/ValueError for a bad ``code``.
        """
        check_close_code(code)
        status = self.status
        if status is not RUNNING:
            if status is CLOSED and self._reconnect_task is not None:
                self._closed_by_user = True
                self._reconnect_task.cancel()
                self._outbox.drop("the client was closed before it reconnected")
                return
            raise NotRunning(f"client is {status.name}: nothing to close")
        self._closed_by_user = True
        self._move(CLOSING)
        proto = self._proto
        runner = self._runner
        me = asyncio.current_task()  # a handler of this client that closes it is not waited for
        if runner is not None and proto is not None and proto.transport is not None:
            self._draining = True  # until the next connect
            proto.hold_reads = True
            proto.flush()  # reading pauses
            await runner.wait_idle(self.options.close_timeout, me)
            await runner.cancel_and_wait(self.options.close_timeout, me)
            proto.hold_reads = False
            proto.flush()
        if proto is not None and proto.transport is not None:
            proto.close(code)  # the engine aborts the transport after close_timeout
            try:
                await asyncio.wait_for(
                    asyncio.shield(proto.closed), self.options.close_timeout + 1.0
                )
            except TimeoutError:
                proto.transport.abort()
        if self._runner is not None:
            await self._runner.wait_idle(self.options.close_timeout, me)
        self._pending.fail_all(ConnectionLost("client closed while the request was pending"))
        if self.status is CLOSING:
            self._move(CLOSED)
            self.hooks.run("on_close")

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.status is RUNNING:
            await self.close()

    def _lost(self, proto: _ClientProtocol) -> None:
        if proto is not self._proto:
            return
        self._pending.fail_all(ConnectionLost(f"connection to {self.server} lost"))
        status = self.status
        if status is RUNNING or (status is CLOSING and not self._closed_by_user):
            # a clean close by the server (1000, 1001, or a Close without status: 1005) is no error
            if self.close_code not in CLEAN_CLOSE_CODES and not self._loss_reported:
                self.report_error(
                    ConnectionLost(f"connection to {self.server} lost (code {self.close_code})")
                )
            if status is RUNNING:
                self._move(CLOSING)
            self._move(CLOSED)
            self.hooks.run("on_close")
            if self.options.reconnect and not self._closed_by_user:
                self._reconnect_task = asyncio.ensure_future(self._reconnect_loop())

    # ------------------------------------------------------------ outbox
    def _outbox_open(self) -> bool:
        """Whether a send now goes to the outbox: reconnecting, with ``outbox_size`` > 0."""
        return (
            self.options.outbox_size > 0
            and self.status is CLOSED
            and not self._closed_by_user
            and self._reconnect_task is not None
            and not self._reconnect_task.done()
        )

    def _queue(self, what: str, message: Message[Any], topic: str = "") -> int:
        return self._outbox.put(self.options.outbox_size, what, message, topic)

    async def _reconnect_loop(self) -> None:
        backoff = Backoff(self.options.reconnect_initial, self.options.reconnect_max)
        while self.status is CLOSED and not self._closed_by_user:
            await asyncio.sleep(backoff.next_wait())
            if self._closed_by_user or self.status is not CLOSED:
                return
            attempt = backoff.attempt
            self.hooks.run("on_reconnect_attempt", attempt, backoff.delay)
            try:
                await self._open()
            except (GoomerangError, OSError) as exc:
                self.report_error(ConnectionLost(f"reconnect attempt {attempt} failed: {exc}"))
                backoff.failed()
                continue
            self._move(RUNNING)
            engine = self._engine
            if engine is not None:
                self._held.replay(engine, self.report_error)
                self._outbox.send_all(engine)
                self._flush()
            return
