"""A blocking goomerang client on plain sockets, for scripts and thread-based web apps.

``goomerang_io.sync.Client`` has the asyncio client's methods without ``await``.
It shares everything but the IO with it: the engine
(:class:`goomerang_proto.ClientConnection`), the router, the registry, the
errors, the lifecycle, :class:`~goomerang_io.hooks.Hooks` and
:class:`~goomerang_io.options.ClientOptions`.

Threads. One reader thread per connection reads the socket, feeds the engine
and runs the handlers (plain functions; they must not call ``send_sync``, which
would wait for a reply that only the reader thread can deliver). It also owns
the clock: heartbeat pings, the ping timeout and the close timeout are deadlines
of its ``select`` loop. Any thread may send: a lock guards the engine, a second
lock keeps writes in the order the engine produced them. TLS runs over an
``ssl.SSLObject`` with memory BIOs under the engine lock, so the SSL state is
never touched by two threads at once.
"""

from __future__ import annotations

import inspect
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from google.protobuf.wrappers_pb2 import StringValue

from goomerang_proto import (
    AlreadyRunning,
    ClientConnection,
    Closing,
    ConnectionLost,
    GoomerangError,
    HandlerError,
    HandshakeError,
    Message,
    NotRunning,
    Side,
    Status,
    SyncTimeout,
    TooManyPending,
    UnexpectedReply,
    UnknownKind,
    new_uuid,
)
from goomerang_proto import events as ev

from ..address import parse_listen
from ..authorization import NEGOTIATION_HEADER, error_of, wants_error_replies
from ..awaitables import Ready
from ..endpoint import Endpoint
from ..hooks import CLIENT_HOOKS
from ..options import ClientOptions
from ..sender import Sender
from ..tlserrors import tls_error
from ..validate import (
    check_close_code,
    check_headers,
    check_message,
    check_size,
    check_timeout,
    check_topic,
)

T = TypeVar("T")

_READ_SIZE = 256 * 1024


class _Pending:
    """One sync request waiting for its reply."""

    __slots__ = ("done", "error", "reply")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: Message[Any] | None = None
        self.error: GoomerangError | None = None


class _Link:
    """One TCP (optionally TLS) connection and its engine."""

    def __init__(self, sock: socket.socket, engine: ClientConnection) -> None:
        self.sock = sock
        self.engine = engine
        self.tls: ssl.SSLObject | None = None
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.closed = threading.Event()
        self.dead = False
        self.pong_seen = False
        self.pongs = 0
        self.tls_eof = False
        self.early: list[ev.Event] = []

    def encode(self, data: bytes) -> bytes:
        """Plain bytes to wire bytes (engine lock held)."""
        if self.tls is None:
            return data
        if data and not self.tls_eof:
            self.tls.write(data)
        return self.outgoing.read()

    def decode(self, data: bytes) -> bytes:
        """Wire bytes to plain bytes (engine lock held); b'' when TLS needs more."""
        if self.tls is None:
            return data
        self.incoming.write(data)
        chunks = []
        while True:
            try:
                chunk = self.tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            if not chunk:  # the peer's close_notify: answer it, then EOF
                self.tls_eof = True
                try:
                    self.tls.unwrap()
                except ssl.SSLError:
                    pass
                break
            chunks.append(chunk)
        return b"".join(chunks)


class Client(Endpoint):
    """A blocking goomerang client: send, send_sync, broadcast, pub/sub, handlers, hooks.

    ``Client(server="127.0.0.1:8080")``; every :class:`ClientOptions` field is
    accepted as a keyword argument, plus ``tls`` (an ``ssl.SSLContext``; the
    path becomes ``/wss``), ``headers`` (extra handshake headers) and hooks
    (``on_error=[...]`` and the others in ``CLIENT_HOOKS``). Handlers are plain
    functions ``handler(sender, message)`` run on the reader thread.
    """

    def __init__(
        self,
        server: str = "127.0.0.1:8080",
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        path: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.server = server
        self.host, self.port = parse_listen(server)
        self.tls = tls
        self.server_hostname = server_hostname
        self.path = path if path is not None else ("/wss" if tls is not None else "/ws")
        if tls is not None and not isinstance(tls, ssl.SSLContext):
            raise TypeError(f"tls must be an ssl.SSLContext or None, got {type(tls).__name__}")
        self.extra_headers = check_headers(headers)
        self._setup(ClientOptions, CLIENT_HOOKS, Side.CLIENT, kwargs, "Client")
        self._lock = threading.RLock()
        self._wlock = threading.Lock()
        self._link: _Link | None = None
        self._reader: threading.Thread | None = None
        self._pending: dict[str, _Pending] = {}
        self._sender = Sender(self, "")
        self._topics: set[str] = set()
        self._closed_by_user = False
        self._stop = threading.Event()
        self._reconnector: threading.Thread | None = None
        self.identity: Any = None
        self.peer: tuple[str, int] | None = None
        self.conn_id = 0
        self.close_code: int | None = None
        self._error_replies = False  # the server echoed the negotiation header

    # ------------------------------------------------------------ registry
    def _move(self, status: Status) -> None:
        with self._lock:
            self._lifecycle.move(status)
            self._is_closed = status is Status.CLOSED
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
            self._closed_by_user = False
            self._stop.clear()
        self._open()
        self.hooks.run("on_configuration", self.options)
        self._move(Status.RUNNING)

    def _open(self) -> None:
        if not self.router.frozen:
            self.router.register_message(StringValue)  # error replies (see authorization)
        self.router.freeze()
        timeout = self.options.handshake_timeout
        deadline = time.monotonic() + timeout
        host_header = (
            f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        )
        engine = ClientConnection(
            host_header,
            self.path,
            headers=(*self.extra_headers, (NEGOTIATION_HEADER, "1")),
            registry=self.router.registry,
            max_message_size=self.options.max_message_size,
            clock=time.time_ns,
        )
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except TimeoutError:
            raise HandshakeError(f"could not connect to {self.server} within {timeout} s") from None
        except OSError as exc:
            raise ConnectionLost(f"could not connect to {self.server}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(sock, engine)
        try:
            if self.tls is not None:
                link.tls = self.tls.wrap_bio(
                    link.incoming, link.outgoing, server_hostname=self.server_hostname or self.host
                )
                try:
                    self._tls_handshake(link, deadline)
                except ssl.SSLError as exc:
                    hostname = self.server_hostname or self.host
                    raise tls_error(self.server, hostname, exc) from exc
            self._handshake(link, deadline)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        peer = sock.getpeername()
        self.peer = (str(peer[0]), int(peer[1]))
        self.close_code = None
        with self._lock:
            self._link = link
        reader = threading.Thread(
            target=self._read_loop, args=(link,), name=f"goomerang-sync-{self.server}", daemon=True
        )
        self._reader = reader
        reader.start()

    def _remaining(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise HandshakeError(
                f"could not connect to {self.server} within {self.options.handshake_timeout} s"
            )
        return left

    def _tls_handshake(self, link: _Link, deadline: float) -> None:
        tls = link.tls
        assert tls is not None
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            out = link.outgoing.read()
            if out:
                link.sock.settimeout(self._remaining(deadline))
                link.sock.sendall(out)
            link.sock.settimeout(self._remaining(deadline))
            try:
                data = link.sock.recv(_READ_SIZE)
            except TimeoutError:
                self._remaining(0.0)
                raise
            if not data:
                raise HandshakeError(
                    f"{self.server} closed the connection during the TLS handshake"
                )
            link.incoming.write(data)
        out = link.outgoing.read()
        if out:
            link.sock.sendall(out)

    def _handshake(self, link: _Link, deadline: float) -> None:
        engine = link.engine
        sock = link.sock
        try:
            sock.settimeout(self._remaining(deadline))
            sock.sendall(link.encode(engine.data_to_send()))
            while True:
                sock.settimeout(self._remaining(deadline))
                try:
                    data = sock.recv(_READ_SIZE)
                except TimeoutError:
                    self._remaining(0.0)
                    raise
                if data:
                    engine.receive_data(link.decode(data))
                else:
                    engine.receive_eof()
                early: list[ev.Event] = []
                for event in engine.events():
                    if isinstance(event, ev.Connected):
                        self._error_replies = wants_error_replies(event.headers)
                    elif isinstance(event, ev.ConnectionClosed):
                        raise event.error or HandshakeError(
                            f"connection closed during the upgrade: {event.reason}"
                        )
                    elif not isinstance(event, ev.HandshakeRejected):
                        early.append(event)
                if engine.status is Status.RUNNING:
                    # Frames that came with the 101 response are handled by the reader.
                    link.early = early
                    return
        except OSError as exc:
            raise ConnectionLost(f"could not connect to {self.server}: {exc}") from exc

    # ------------------------------------------------------------- reader
    def _read_loop(self, link: _Link) -> None:
        sock = link.sock
        opts = self.options
        interval = opts.heartbeat_interval
        next_ping = time.monotonic() + interval if interval else None
        ping_deadline: float | None = None
        close_deadline: float | None = None
        early, link.early = link.early, []
        try:
            self._handle_events(link, early)
            while not link.dead:
                now = time.monotonic()
                deadlines = [d for d in (next_ping, ping_deadline, close_deadline) if d is not None]
                wait = max(0.0, min(deadlines) - now) if deadlines else None
                readable, _, _ = select.select([sock], [], [], wait)
                if readable:
                    try:
                        data = sock.recv(_READ_SIZE)
                    except OSError:
                        data = b""
                    self._feed(link, data)
                    if link.engine.should_close_transport():
                        break
                now = time.monotonic()
                with self._lock:
                    status = link.engine.status
                if status is Status.RUNNING:
                    if link.pong_seen:
                        link.pong_seen = False
                        ping_deadline = None
                    if next_ping is not None and now >= next_ping and interval:
                        self._ping(link)
                        next_ping = now + interval
                        if opts.ping_timeout and ping_deadline is None:
                            ping_deadline = now + opts.ping_timeout
                    if ping_deadline is not None and now >= ping_deadline:
                        self.report_error(
                            ConnectionLost(f"{self.server} did not answer pings; dropping")
                        )
                        break
                elif close_deadline is None:
                    next_ping = ping_deadline = None
                    close_deadline = now + opts.close_timeout
                elif now >= close_deadline:
                    break
        except (OSError, ValueError):
            pass
        finally:
            self._end(link)

    def _feed(self, link: _Link, data: bytes) -> None:
        with self._lock:
            engine = link.engine
            if data:
                try:
                    plain = link.decode(data)
                except ssl.SSLError as exc:
                    self.report_error(ConnectionLost(f"TLS error from {self.server}: {exc}"))
                    plain = b""
                    data = b""
                if plain:
                    engine.receive_data(plain)
            if not data or link.tls_eof:
                engine.receive_eof()
            events = engine.events()
        self._handle_events(link, events)
        self._flush(link)

    def _handle_events(self, link: _Link, events: list[ev.Event]) -> None:
        for event in events:
            self._on_event(link, event)

    def _server_error(self, message: Message[Any]) -> bool:
        """An error reply (negotiated peers only): fail its request or report it."""
        error = error_of(message)
        if error is None:
            return False
        with self._lock:
            pending = self._pending.pop(message.uuid, None) if message.uuid else None
        if pending is not None:
            pending.error = error
            pending.done.set()
        else:
            self.report_error(error)
        return True

    def _on_event(self, link: _Link, event: ev.Event) -> None:
        if (
            self._error_replies
            and isinstance(event, ev.SyncReplyReceived | ev.MessageReceived)
            and event.message.headers
            and self._server_error(event.message)
        ):
            return
        if isinstance(event, ev.SyncReplyReceived):
            message = event.message
            with self._lock:
                pending = self._pending.pop(message.uuid, None)
            if pending is None:
                self.report_error(
                    UnexpectedReply(
                        f"sync reply {message.uuid} ({message.kind}) arrived after its caller "
                        "gave up, or was never asked for; dropped"
                    )
                )
            else:
                pending.reply = message
                pending.done.set()
        elif isinstance(event, ev.MessageReceived):
            message = event.message
            chain = self.router.resolve(message.kind)
            if chain is None:
                self.report_error(GoomerangError(f"no handler for kind {message.kind!r}"))
            else:
                self._run_handler(chain, message)
        elif isinstance(event, ev.PongReceived):
            link.pong_seen = True
            link.pongs += 1
        elif isinstance(event, ev.ErrorOccurred):
            error = event.error
            if isinstance(error, UnknownKind) and error.uuid:
                with self._lock:
                    pending = self._pending.pop(error.uuid, None)
                if pending is not None:
                    pending.error = error  # the caller learns now, not at its timeout
                    pending.done.set()
            self.report_error(error)
        elif isinstance(event, ev.ConnectionClosed):
            self.close_code = event.code
            if event.error is not None:
                self.report_error(event.error)

    def _run_handler(self, chain: Callable[..., Any], message: Message[Any]) -> None:
        self.hooks.run("on_worker_start")
        try:
            result = chain(self._sender, message)
            if inspect.iscoroutine(result):
                result.close()
                raise TypeError("async handlers need the asyncio Client; this one is blocking")
        except Exception as exc:
            err = HandlerError(f"handler for {message.kind} raised {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            self.report_error(err)
        finally:
            self.hooks.run("on_worker_end")

    def _end(self, link: _Link) -> None:
        """The reader is done with ``link``: close the socket, fail waiters, maybe reconnect."""
        with self._lock:
            link.dead = True
            if link.engine.status is not Status.CLOSED:
                link.engine.abort()
            link.engine.events()
            current = self._link is link
            if current:
                self._link = None
            pending = self._pending if current else {}
            if current:
                self._pending = {}
        try:
            link.sock.close()
        except OSError:
            pass
        link.closed.set()
        for waiter in pending.values():
            waiter.error = ConnectionLost(f"connection to {self.server} lost")
            waiter.done.set()
        if not current or self.status is not Status.RUNNING:
            return
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
        delay = self.options.reconnect_initial
        attempt = 0
        while self.status is Status.CLOSED and not self._closed_by_user:
            attempt += 1
            if self._stop.wait(delay * (0.5 + random.random() / 2)):
                return
            if self._closed_by_user or self.status is not Status.CLOSED:
                return
            self.hooks.run("on_reconnect_attempt", attempt, delay)
            try:
                self._open()
            except (GoomerangError, OSError) as exc:
                self.report_error(ConnectionLost(f"reconnect attempt {attempt} failed: {exc}"))
                delay = min(delay * 2, self.options.reconnect_max)
                continue
            self._move(Status.RUNNING)
            self._resubscribe(sorted(self._topics))
            return

    def _resubscribe(self, topics: list[str]) -> None:
        def op(engine: ClientConnection) -> None:
            for topic in topics:
                engine.subscribe(topic)

        if topics:
            self._call(op, check=False)

    # ------------------------------------------------------------- output
    def _flush(self, link: _Link) -> None:
        """Write what the engine queued (e.g. pongs, the close answer)."""
        with self._lock:
            data = link.encode(link.engine.data_to_send())
            close = link.engine.should_close_transport()
            if data:
                self._wlock.acquire()
        if data:
            try:
                link.sock.sendall(data)
            except OSError:
                pass
            finally:
                self._wlock.release()
        if close:
            self._shutdown(link)

    def _shutdown(self, link: _Link) -> None:
        try:
            link.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _call(self, op: Callable[[ClientConnection], T], check: bool = True) -> T:
        """Run ``op`` on the engine and write its bytes, in engine order."""
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
            engine = link.engine
            if engine.status is not Status.RUNNING:
                raise NotRunning(f"connection to {self.server} is {engine.status.name}")
            result = op(engine)
            data = link.encode(engine.data_to_send())
            if data:
                self._wlock.acquire()
        if data:
            try:
                link.sock.sendall(data)
            except OSError as exc:
                self._shutdown(link)
                raise ConnectionLost(f"connection to {self.server} lost: {exc}") from exc
            finally:
                self._wlock.release()
        return result

    def _ping(self, link: _Link) -> None:
        with self._lock:
            if link.engine.status is not Status.RUNNING:
                return
            link.engine.ping(b"ping")
        self._flush(link)

    def send_message(self, message: Message[Any], uuid: str) -> Ready[int]:
        """Used by the Sender given to handlers."""
        return Ready(self._call(lambda e: e.send(message, uuid=uuid, is_sync=bool(uuid))))

    @property
    def outgoing_limit(self) -> int:
        """Largest message this client sends (its own ``max_message_size``)."""
        return int(self.options.max_message_size)

    def send(self, message: Message[Any]) -> int:
        """Send ``message`` (no reply expected); return the payload size in bytes.

        Argument errors (TypeError, MessageTooLarge) are raised before anything is sent.
        """
        check_size(check_message(message), self.options.max_message_size)
        return self._call(lambda e: e.send(message))

    def send_sync(self, message: Message[Any], timeout: float | None = 5.0) -> Message[Any]:
        """Send ``message`` as a request and block until the reply (SyncTimeout after timeout).

        Raises ConnectionLost when the connection drops while waiting, and
        TooManyPending past ``max_pending_sync`` waiting requests, RemoteError at
        once on an error reply, UnknownKind at once for a reply kind not registered
        here; argument errors (TypeError/ValueError, MessageTooLarge) before sending.
        """
        check_message(message)
        check_timeout(timeout)
        check_size(message, self.options.max_message_size, "0" * 36)
        if threading.current_thread() is self._reader:
            raise GoomerangError(
                "send_sync cannot be called from a handler of the blocking client: the reply "
                "would be read by this very thread; use send() or another thread"
            )
        uid = new_uuid()
        waiter = _Pending()

        def op(engine: ClientConnection) -> int:
            if len(self._pending) >= self.options.max_pending_sync:
                raise TooManyPending(
                    f"{len(self._pending)} sync requests already pending "
                    f"(max_pending_sync={self.options.max_pending_sync})"
                )
            size = engine.send(message, uuid=uid, is_sync=True)
            self._pending[uid] = waiter
            return size

        try:
            self._call(op)
            if not waiter.done.wait(timeout):
                raise SyncTimeout(
                    f"no reply to sync request {uid} ({message.kind}) within {timeout} s"
                )
        finally:
            with self._lock:
                self._pending.pop(uid, None)
        if waiter.error is not None:
            raise waiter.error
        assert waiter.reply is not None
        return waiter.reply

    def broadcast(self, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to every client (this one included)."""
        check_size(check_message(message), self.options.max_message_size)
        return self._call(lambda e: e.broadcast(message))

    def publish(self, topic: str, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to the subscribers of ``topic``."""
        check_topic(topic)
        check_size(check_message(message), self.options.max_message_size - len(topic))
        return self._call(lambda e: e.publish(topic, message))

    def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic`` (re-subscribed automatically after a reconnect)."""
        check_topic(topic)
        self._call(lambda e: e.subscribe(topic))
        self._topics.add(topic)

    def subscribe_topic(self, topic: str) -> None:
        """``sender.subscribe`` in a handler."""
        self.subscribe(topic)

    def unsubscribe_topic(self, topic: str) -> None:
        """``sender.unsubscribe`` in a handler."""
        self.unsubscribe(topic)

    def unsubscribe(self, topic: str) -> None:
        """Unsubscribe from ``topic``."""
        check_topic(topic)
        self._call(lambda e: e.unsubscribe(topic))
        self._topics.discard(topic)

    # -------------------------------------------------------------- close
    def close(self, code: int = 1000) -> None:
        """Close gracefully: Close frame, wait (close_timeout) for the answer, end CLOSED."""
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
        self._move(Status.CLOSING)
        if link is not None:
            with self._lock:
                link.engine.close(code)
            self._flush(link)
            if threading.current_thread() is not self._reader:
                if not link.closed.wait(self.options.close_timeout + 1.0):
                    self._shutdown(link)
                    link.closed.wait(1.0)
        with self._lock:
            pending = self._pending
            self._pending = {}
        for waiter in pending.values():
            waiter.error = ConnectionLost("client closed while the request was pending")
            waiter.done.set()
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
