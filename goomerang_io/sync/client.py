"""A blocking goomerang client on plain sockets, for scripts and thread-based web apps.

``goomerang_io.sync.Client`` has the asyncio client's methods without ``await``.
It shares everything but the IO with it: the engine
(:class:`goomerang_proto.ClientConnection`), the router, the registry, the
errors, the lifecycle, :class:`~goomerang_io.hooks.Hooks` and
:class:`~goomerang_io.options.ClientOptions`.

Threads. Per connection, one IO thread (:mod:`.connection`) reads, writes and
keeps the deadlines, and never runs user code; sync replies are resolved
there. One handler thread (:mod:`.inbox`) runs the handlers and the error
hooks in arrival order, from a bounded queue that pauses reading when full.
Any thread may send: the bytes are queued in engine order under one lock and
written without blocking; a sender waits only while more than
``write_limit`` bytes are unsent (the engine's high water, until a quarter is
left), and never past the connection's deadlines (``ping_timeout`` for a
server that stopped reading, ``close_timeout`` once closing).
"""

from __future__ import annotations

import inspect
import ssl
import threading
import time
from collections.abc import Callable
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
    HandlerError,
    Message,
    NotRunning,
    Side,
    Status,
    SyncTimeout,
    UnknownKind,
    new_uuid,
)
from goomerang_proto import events as ev
from goomerang_proto.frames import CLEAN_CLOSE_CODES
from goomerang_proto.message import held_size

from ..address import parse_listen
from ..authorization import ERROR_REPLIES, error_of
from ..awaitables import Ready
from ..dial import HeadersArg, UpgradeHeaders, ws_path
from ..endpoint import Endpoint
from ..engines import client_engine
from ..handling.pending import PendingRequests, Waiter
from ..hooks import CLIENT_HOOKS
from ..keywords import ClientKeywords
from ..options import ClientOptions
from ..reconnect import Backoff, HeldSubscriptions
from ..sender import Sender
from ..validate import (
    check_close_code,
    check_message,
    check_reply_class,
    check_timeout,
    check_topic,
    expect_reply,
)
from .connection import Connection
from .handshake import open_connection
from .inbox import Inbox

T = TypeVar("T")
R = TypeVar("R", bound=ProtoMessage)


class Client(Endpoint):
    """A blocking goomerang client: send, send_sync, broadcast, pub/sub, handlers, hooks.

    ``Client(server="127.0.0.1:8080")``; every :class:`ClientOptions` field is
    accepted as a keyword argument, plus ``tls`` (an ``ssl.SSLContext``; the
    path becomes ``/wss``), ``headers`` (extra handshake headers) and hooks
    (``on_error=[...]`` and the others in ``CLIENT_HOOKS``). Handlers are plain
    functions ``handler(sender, message)`` run on the handler thread.
    """

    def __init__(
        self,
        server: str = "127.0.0.1:8080",
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        headers: HeadersArg = (),
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
        if self.options.outbox_size:
            raise ValueError("outbox_size is an option of the asyncio Client only (not blocking)")
        self._error_replies = False  # the server accepted the error-replies extension
        self._lock = threading.RLock()
        self._link: Connection | None = None
        self._inbox: Inbox | None = None
        self._pending = PendingRequests(self.options.max_pending_sync)
        self._peer_closing = False  # CLOSING because the server's Close arrived
        self._sender = Sender(self, "")
        self._held = HeldSubscriptions()
        self._connecting = False  # a connect() is under way (a second one is refused)
        self._closed_by_user = False
        self._stop = threading.Event()
        self._reconnector: threading.Thread | None = None
        self.identity: Any = None
        self.peer: tuple[str, int] | None = None
        self.conn_id = 0
        self.close_code: int | None = None

    # ------------------------------------------------------------ registry
    def _move(self, status: Status) -> None:
        with self._lock:
            self._lifecycle.move(status)
            self.ended = status is Status.CLOSED
        self.hooks.run("on_status_change", status)

    # ------------------------------------------------------------ connect
    def connect(self) -> None:
        """Connect and complete the upgrade (handshake_timeout); works again after close()."""
        with self._lock:
            status = self.status
            if status is Status.RUNNING:
                raise AlreadyRunning("client is already connected")
            if status is Status.CLOSING:
                raise Closing("client is closing")
            if self._connecting:
                raise AlreadyRunning("connect() is already in progress")
            self._connecting = True
            self._closed_by_user = False
            self._stop.clear()
        try:
            start = self._open()
            self.hooks.run("on_configuration", self.options)
            self._move(Status.RUNNING)
        finally:
            with self._lock:
                self._connecting = False
        start()

    def _open(self) -> Callable[[], None]:
        """Connect and upgrade; returns the function that starts the IO thread."""
        if not self.router.frozen:
            self.router.register_message(StringValue)  # error replies (see authorization)
        self.router.freeze()
        engine = client_engine(
            self.options,
            self.host,
            self.port,
            self.path,
            self._headers(),
            self.router.registry,
            time.monotonic(),
        )
        opened = open_connection(
            engine,
            self.host,
            self.port,
            timeout=self.options.handshake_timeout,
            tls=self.tls,
            server_hostname=self.server_hostname,
        )
        self._error_replies = ERROR_REPLIES in engine.extensions
        try:
            peer = opened.sock.getpeername()
        except OSError:  # reset right after its 101: the connection reports the loss
            peer = (self.host, self.port)
        self.peer = (str(peer[0]), int(peer[1]))
        self.close_code = None
        conn = Connection(
            opened.sock,
            engine,
            self.options,
            self._lock,
            tls=opened.tls,
            name=f"goomerang-sync-io-{self.server}",
        )
        inbox = Inbox(
            f"goomerang-sync-handlers-{self.server}", conn.pause_reading, conn.resume_reading
        )
        conn.on_events = lambda events: self._on_events(conn, inbox, events)
        conn.on_end = lambda _conn: self._end(conn, inbox)
        with self._lock:
            self._link = conn
            self._inbox = inbox
        return partial(conn.start, opened.early)

    # ---------------------------------------------------- IO thread events
    def _on_events(self, conn: Connection, inbox: Inbox, events: list[ev.Event]) -> None:
        """Called on the IO thread: replies resolve here, user code goes to the handler thread."""
        batch: list[tuple[Callable[[], None], int]] = []
        for event in events:
            if (
                self._error_replies
                and isinstance(event, ev.SyncReplyReceived | ev.MessageReceived)
                and event.message.headers
                and self._server_error(batch, event.message)
            ):
                continue
            if isinstance(event, ev.MessageReceived):
                message = event.message
                chain = self.router.resolve(message.kind)
                if chain is None:
                    err = GoomerangError(f"no handler for kind {message.kind!r}")
                    batch.append((partial(self.report_error, err), 0))
                else:
                    handler = partial(self._run_handler, conn, chain, message)
                    batch.append((handler, held_size(message)))
            elif isinstance(event, ev.SyncReplyReceived):
                message = event.message
                with self._lock:
                    late = self._pending.reply(message)
                if late is not None:
                    batch.append((partial(self.report_error, late), 0))
            elif isinstance(event, ev.ErrorOccurred):
                error = event.error
                if isinstance(error, UnknownKind) and error.uuid:
                    with self._lock:  # the caller learns now, not at its timeout
                        self._pending.fail(error.uuid, error)
                batch.append((partial(self.report_error, error), 0))
            elif isinstance(event, ev.ConnectionClosed):
                self.close_code = event.code
                if event.error is not None:
                    with self._lock:
                        if conn.failure is None:
                            conn.failure = event.error
                elif event.by_peer:
                    self._peer_started_close(conn)
        if batch:
            inbox.put_many(batch)

    def _server_error(
        self, batch: list[tuple[Callable[[], None], int]], message: Message[Any]
    ) -> bool:
        """An error reply (negotiated peers only): fail its request or report it."""
        error = error_of(message)
        if error is None:
            return False
        with self._lock:
            failed = bool(message.uuid) and self._pending.fail(message.uuid, error)
        if not failed:
            batch.append((partial(self.report_error, error), 0))
        return True

    def _run_handler(
        self, conn: Connection, chain: Callable[..., Any], message: Message[Any]
    ) -> None:
        """Run one handler; its exception goes to on_error as HandlerError.

        Except a send that failed because the connection is ending
        (ConnectionLost, NotRunning, Closing once ``conn`` is dead or the
        client is no longer RUNNING): that end is reported once by the
        connection (or is the user's close), not again by every handler still
        queued behind it.
        """
        self.hooks.run("on_worker_start")
        try:
            result = chain(self._sender, message)
            if inspect.iscoroutine(result):
                result.close()
                raise TypeError("async handlers need the asyncio Client; this one is blocking")
        except (ConnectionLost, NotRunning, Closing) as exc:
            if not conn.dead and self.status is Status.RUNNING:
                self._handler_failed(message, exc)
        except Exception as exc:
            self._handler_failed(message, exc)
        finally:
            self.hooks.run("on_worker_end")

    def _handler_failed(self, message: Message[Any], exc: Exception) -> None:
        err = HandlerError(f"handler for {message.kind} raised {type(exc).__name__}: {exc}")
        err.__cause__ = exc
        self.report_error(err)

    def _peer_started_close(self, conn: Connection) -> None:
        """The server's Close arrived (IO thread): CLOSING now, as Go's client goes.

        RUNNING -> CLOSING here, CLOSED once the server ends TCP (``_end``); sends
        already raise, so the status says so while the handshake finishes.
        """
        with self._lock:
            if self._link is not conn or self.status is not Status.RUNNING:
                return
            self._lifecycle.move(Status.CLOSING)
            self._peer_closing = True
        self.hooks.run("on_status_change", Status.CLOSING)

    def _end(self, conn: Connection, inbox: Inbox) -> None:
        """The IO thread closed ``conn``'s socket: fail waiters, report, maybe reconnect.

        A close from the server with 1000, 1001 or no status (1005) is no
        error (RFC 6455 section 7.4.1; the asyncio client does the same);
        anything else (1006: TCP ended without a Close, a deadline, a protocol
        error) is reported once, as ConnectionLost unless the engine said more.
        """
        inbox.close()
        with self._lock:
            current = self._link is conn
            if current:
                self._link = None
            if current:
                self._pending.fail_all(ConnectionLost(f"connection to {self.server} lost"))
            failure = conn.failure
            announce = current and self.status is Status.RUNNING
            running = announce or (current and self._peer_closing)
            self._peer_closing = False
            if announce:  # claimed here, so a concurrent close() sees CLOSING
                self._lifecycle.move(Status.CLOSING)
        if not running:
            return
        if announce:
            self.hooks.run("on_status_change", Status.CLOSING)
        if failure is not None:
            self.report_error(failure)
        elif self.close_code not in CLEAN_CLOSE_CODES:
            self.report_error(
                ConnectionLost(f"connection to {self.server} lost (code {self.close_code})")
            )
        self._move(Status.CLOSED)
        self.hooks.run("on_close")
        if self.options.reconnect and not self._closed_by_user:
            self._reconnector = threading.Thread(
                target=self._reconnect_loop, name="goomerang-sync-reconnect", daemon=True
            )
            self._reconnector.start()

    def _reconnect_loop(self) -> None:
        backoff = Backoff(self.options.reconnect_initial, self.options.reconnect_max)
        while self.status is Status.CLOSED and not self._closed_by_user:
            if self._stop.wait(backoff.next_wait()):
                return
            if self._closed_by_user or self.status is not Status.CLOSED:
                return
            attempt = backoff.attempt
            self.hooks.run("on_reconnect_attempt", attempt, backoff.delay)
            try:
                start = self._open()
            except (GoomerangError, OSError) as exc:
                self.report_error(ConnectionLost(f"reconnect attempt {attempt} failed: {exc}"))
                backoff.failed()
                continue
            if self._abandoned(start):
                return
            self._move(Status.RUNNING)
            start()
            self._resubscribe()
            if self._closed_by_user:  # close() came between the check and the move
                self.close()
            return

    def _abandoned(self, start: Callable[[], None]) -> bool:
        """close() came while this reconnect attempt was in its handshake: the new
        connection is closed (1000) at once and the client stays CLOSED."""
        with self._lock:
            if not self._closed_by_user:
                return False
            link, self._link = self._link, None
        start()
        if link is not None:
            link.close(1000)
        return True

    def _resubscribe(self) -> None:
        held = self._held
        if held:
            self._call(lambda engine: held.replay(engine, self.report_error), check=False)

    # ------------------------------------------------------------- output
    def _call(
        self,
        op: Callable[[ClientConnection], T],
        check: bool = True,
        deadline: float | None = None,
    ) -> T:
        """Run ``op`` on the engine and queue its bytes (in engine order); wait for drain.

        Raises Closing or NotRunning when the client cannot send,
        ConnectionLost when the connection ends before the bytes were written
        (a server that stopped reading: within ``ping_timeout``), and
        TimeoutError when the ``deadline`` (``time.monotonic()``) passes while
        waiting for drain.
        """
        with self._lock:
            link = self._link
            if check:
                status = self.status
                if status is Status.CLOSING:
                    raise Closing("client is closing: no new messages are accepted")
                if status is not Status.RUNNING or link is None or link.dead:
                    raise NotRunning(f"client is {status.name}: connect() first")
            if link is None:
                raise NotRunning("client is not connected")
            if link.dead or link.engine.status is not Status.RUNNING:
                raise NotRunning(f"connection to {self.server} is {link.engine.status.name}")
            return link.submit(op, deadline=deadline)  # its wait for drain releases the lock

    def send_message(self, message: Message[Any], uuid: str) -> Ready[int]:
        """Used by the Sender given to handlers."""
        return Ready(self._call(lambda e: e.send(message, uuid=uuid, is_sync=bool(uuid))))

    def send(self, message: Message[Any]) -> int:
        """Send ``message`` (no reply expected); return the payload size in bytes.

        Argument errors (TypeError, MessageTooLarge) are raised before anything is sent.
        """
        check_message(message)
        return self._call(lambda e: e.send(message))

    @overload
    def send_sync(self, message: Message[Any], timeout: float | None = 5.0) -> Message[Any]: ...

    @overload
    def send_sync(
        self, message: Message[Any], timeout: float | None = 5.0, *, reply: type[R]
    ) -> Message[R]: ...

    def send_sync(
        self, message: Message[Any], timeout: float | None = 5.0, *, reply: type[R] | None = None
    ) -> Message[Any]:
        """Send ``message`` as a request and block until the reply (SyncTimeout after timeout).

        With ``reply=ReplyClass`` the result is a ``Message[ReplyClass]`` (typed
        for a checker, checked at run time: another kind raises UnexpectedReply).
        RemoteError at once on an error reply, UnknownKind at once for a reply
        kind not registered here; argument errors (TypeError/ValueError,
        MessageTooLarge) before anything is sent.

        ``timeout`` (seconds, None: no limit) bounds the whole call, writing
        included. Raises ConnectionLost when the connection drops while
        waiting, and TooManyPending past ``max_pending_sync`` waiting requests.
        """
        check_message(message)
        check_timeout(timeout)
        check_reply_class(reply)
        inbox = self._inbox
        if inbox is not None and threading.current_thread() is inbox.thread:
            raise GoomerangError(
                "send_sync cannot be called from a handler of the blocking client: handlers "
                "run one at a time, so every message behind this one would wait for the reply; "
                "use send() or another thread"
            )
        uid = new_uuid()
        done = threading.Event()
        waiters: list[Waiter] = []

        def op(engine: ClientConnection) -> int:
            waiters.append(self._pending.open(uid, done.set))  # TooManyPending: nothing sent
            return engine.send(message, uuid=uid, is_sync=True)

        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            try:
                self._call(op, deadline=deadline)
            except TimeoutError:
                raise SyncTimeout(
                    f"sync request {uid} ({message.kind}) still waits to be written after "
                    f"{timeout} s (the server reads slowly or not at all)"
                ) from None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done.wait(left)
        finally:
            with self._lock:
                self._pending.discard(uid)
        timed_out = f"no reply to sync request {uid} ({message.kind}) within {timeout} s"
        return expect_reply(waiters[0].result(timed_out), reply)

    def broadcast(self, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to every client (this one included)."""
        check_message(message)
        return self._call(lambda e: e.broadcast(message))

    def publish(self, topic: str, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to the subscribers of ``topic``."""
        check_topic(topic)
        check_message(message)
        return self._call(lambda e: e.publish(topic, message))

    def subscribe(self, topic: str, group: str | None = None) -> None:
        """Subscribe to ``topic`` (re-subscribed automatically after a reconnect).

        With ``group``, join that queue group of ``topic``: each publish goes
        to one member of the group (see the asyncio ``Client.subscribe``).
        Raises ``ValueError`` for an empty topic or group and
        ``ExtensionNotNegotiated`` for a group on a server that did not accept
        the ``queue-groups`` extension (the Go goomerang).
        """
        check_topic(topic)
        if group is not None:
            check_topic(group, "group")
        self._call(lambda e: e.subscribe(topic, group))
        self._held.add(topic, group)

    def unsubscribe(self, topic: str, group: str | None = None) -> None:
        """Unsubscribe from ``topic`` (or leave its queue ``group``)."""
        check_topic(topic)
        if group is not None:
            check_topic(group, "group")
        self._call(lambda e: e.unsubscribe(topic, group))
        self._held.discard(topic, group)

    # -------------------------------------------------------------- close
    def subscribe_topic(self, topic: str) -> None:
        """``sender.subscribe`` in a handler."""
        self.subscribe(topic)

    def unsubscribe_topic(self, topic: str) -> None:
        """``sender.unsubscribe`` in a handler."""
        self.unsubscribe(topic)

    def close(self, code: int = 1000) -> None:
        """Close gracefully: Close frame, wait for the server to end TCP, end CLOSED.

        Returns within ``close_timeout`` seconds (plus scheduling), whatever
        the server does: past it the IO thread aborts the socket (RST), which
        also ends a send stuck behind a server that stopped reading (it
        raises ConnectionLost). Raises NotRunning when not RUNNING and
        TypeError/ValueError for a bad ``code``.
        """
        check_close_code(code)
        with self._lock:
            status = self.status
            if status is not Status.RUNNING:
                if status is Status.CLOSED and self._reconnector is not None:
                    self._closed_by_user = True
                    self._stop.set()
                    return
                raise NotRunning(f"client is {status.name}: nothing to close")
            self._closed_by_user = True
            self._stop.set()
            link = self._link
            self._lifecycle.move(Status.CLOSING)
        self.hooks.run("on_status_change", Status.CLOSING)
        if link is not None:
            link.close(code)
            if threading.current_thread() is not link.thread:
                if not link.closed.wait(self.options.close_timeout + 0.5):
                    link.abort(ConnectionLost(f"{self.server} did not close in time"))
                    link.closed.wait(0.5)
        with self._lock:
            self._pending.fail_all(ConnectionLost("client closed while the request was pending"))
        if self.status is Status.CLOSING:
            self._move(Status.CLOSED)
            self.hooks.run("on_close")

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is Status.RUNNING:
            self.close()


__all__ = ["Client"]
