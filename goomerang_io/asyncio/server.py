"""The asyncio goomerang server."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Unpack

from goomerang_proto import (
    AlreadyRunning,
    Closed,
    Closing,
    GoomerangError,
    Groups,
    Message,
    NotRunning,
    Side,
    Status,
    Topics,
    prepare,
)
from goomerang_proto.codec import pack
from goomerang_proto.errors import MessageTooLarge, PermissionDenied
from goomerang_proto.frames import OP_BINARY, build_frame

from ..address import parse_listen
from ..authorization import check_rule, error_message, topic_allowed, veto
from ..endpoint import Endpoint
from ..hooks import SERVER_HOOKS
from ..http import Rejection, Request, RouteHandler, guard_route
from ..keywords import ServerKeywords
from ..options import ServerOptions
from ..sender import Sender
from ..validate import check_message, check_timeout, check_topic
from .server_protocol import ServerProtocol

_RESERVED_PATHS = ("/ws", "/wss")


@dataclass(frozen=True, slots=True)
class BroadcastResult:
    """Per-client outcome of a broadcast: bytes of payload and time spent writing.

    A fan-out that a client's command starts (BroadcastCmd, PublishCmd) is
    written when the read that carried it has been handled, so that several
    fan-outs from one read reach each target in one write; ``duration`` then
    is the time to queue the frame.
    """

    size: int
    duration: float
    conn_id: int
    ok: bool = True


class Server(Endpoint):
    """A goomerang server: handlers, middlewares, broadcast, pub/sub, routes, hooks.

    ``Server(listen="127.0.0.1:0")``; register handlers, then ``await start()``
    (or ``async with server``, or ``server.run()`` blocking). Every
    :class:`ServerOptions` field is accepted as a keyword argument.
    """

    def __init__(
        self,
        listen: str = "127.0.0.1:8080",
        *,
        tls: ssl.SSLContext | None = None,
        metrics: Any = None,
        backplane: Any = None,
        authenticate: Callable[[Request], Any] | None = None,
        can_subscribe: Callable[[Sender, str], bool] | None = None,
        can_publish: Callable[[Sender, str, Message[Any]], bool] | None = None,
        can_broadcast: Callable[[Sender, Message[Any]], bool] | None = None,
        allowed_origins: Iterable[str] | None = None,
        workers: int | str = 1,
        reuse_port: bool = False,
        **kwargs: Unpack[ServerKeywords],
    ) -> None:
        self.listen = listen
        self.host, self.port = parse_listen(listen)
        self.tls = tls
        self._setup(ServerOptions, SERVER_HOOKS, Side.SERVER, dict(kwargs), "Server")
        opts = self.options
        opts.client_subscribe = check_rule(opts.client_subscribe, "client_subscribe")
        opts.client_publish = check_rule(opts.client_publish, "client_publish")
        if not isinstance(opts.client_broadcast, bool):
            raise TypeError("client_broadcast must be True or False")
        for name, fn in (
            ("authenticate", authenticate),
            ("can_subscribe", can_subscribe),
            ("can_publish", can_publish),
            ("can_broadcast", can_broadcast),
        ):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
        self.can_subscribe = can_subscribe
        self.can_publish = can_publish
        self.can_broadcast = can_broadcast
        self.routes: dict[str, RouteHandler] = {}
        self.metrics = metrics
        self.backplane_url = backplane if isinstance(backplane, str) else None
        self.backplane: Any = None if isinstance(backplane, str) else backplane
        self.authenticate = authenticate
        self.allowed_origins = frozenset(allowed_origins) if allowed_origins is not None else None
        self.workers = _check_workers(workers)
        self.reuse_port = reuse_port or self.workers > 1
        self.worker_index = 0
        self._aserver: asyncio.AbstractServer | None = None
        self._conns: dict[ServerProtocol, None] = {}
        self._tcp: dict[ServerProtocol, None] = {}
        self.topics: Topics[ServerProtocol] = Topics()
        self.groups: Groups[ServerProtocol] = Groups()
        self._ids = itertools.count(1)
        self._ws_path = "/wss" if tls is not None else "/ws"
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sock: Any = None
        self._closed_event = asyncio.Event()
        # Fan-out batching: while a connection handles a read, prepared frames
        # are queued on their targets, which are flushed once it is done.
        self.in_batch = False
        self.dirty: list[ServerProtocol] = []
        """Connections with fan-out frames queued during the current read (flush_dirty)."""
        self._flush_soon = False
        self.supervisor: Any = None
        self.process_hooks: dict[str, list[Callable[[int], Any]]] = {"start": [], "stop": []}

    # ------------------------------------------------------------ registry
    def route(
        self,
        path: str,
        handler: RouteHandler,
        *,
        authorize: Callable[[Request], Any] | None = None,
    ) -> None:
        """Serve ``handler(request)`` for plain HTTP requests on ``path``.

        ``authorize(request)`` (optional, plain or async) protects the route with
        the rules of ``authenticate``: it returns an identity to serve the request,
        a :class:`Rejection` or raises :class:`AuthRejected` to refuse it, and
        returning None answers 401. Use it for ``/metrics`` too:
        ``server.route("/metrics", metrics_route, authorize=check_token)``.
        """
        if not isinstance(path, str):
            raise TypeError(f"path must be a str, got {type(path).__name__}")
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        if authorize is not None:
            if not callable(authorize):
                raise TypeError(f"authorize must be callable, got {type(authorize).__name__}")
            handler = guard_route(handler, authorize)
        if path in _RESERVED_PATHS:
            raise ValueError(f"{path} is reserved for the WebSocket endpoint")
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/', got {path!r}")
        self.routes[path] = handler

    def on_process_start(self, fn: Callable[[int], Any]) -> None:
        """Run ``fn(worker_index)`` in each worker process before it starts serving.

        With ``workers > 1`` it runs once per worker (after fork); use it to start
        per-worker resources. ``run()`` with one process calls it with index 0
        (one process and many behave the same); ``start()`` / ``async with``
        leave the process to you and do not call it.
        """
        self.process_hooks["start"].append(fn)

    def adopt_socket(self, sock: socket.socket) -> None:
        """Serve on ``sock`` (an already bound socket, e.g. SO_REUSEPORT in a worker).

        ``start()`` then listens on it instead of binding ``host:port``.
        """
        self._sock = sock

    def on_process_stop(self, fn: Callable[[int], Any]) -> None:
        """Run ``fn(worker_index)`` in each worker process after it stopped serving."""
        self.process_hooks["stop"].append(fn)

    # ------------------------------------------------------------- status
    @property
    def addr(self) -> str:
        """``host:port`` the server listens on (the real port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to."""
        scheme = "wss" if self.tls is not None else "ws"
        return f"{scheme}://{self.addr}{self._ws_path}"

    def connections(self) -> int:
        """WebSocket connections in this process, counted until their transport is closed."""
        return len(self._conns)

    def is_closed(self) -> bool:
        """True once the server is CLOSED."""
        return self._is_closed

    def counts_workers(self) -> bool:
        """Whether handler start/end must be tracked (worker hooks; the metrics middleware
        counts the concurrent workers itself)."""
        return self.hooks.has("on_worker_start") or self.hooks.has("on_worker_end")

    def worker_started(self) -> None:
        """A handler started (Go's 'worker')."""
        self.hooks.run("on_worker_start")

    def worker_finished(self) -> None:
        """A handler finished."""
        self.hooks.run("on_worker_end")

    # ---------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Bind and start accepting; raises AlreadyRunning / Closed when misused."""
        status = self.status
        if status is Status.RUNNING:
            raise AlreadyRunning("server is already running")
        if status is Status.CLOSING:
            raise Closing("server is shutting down")
        if status is Status.CLOSED:
            raise Closed("server is closed; create a new Server to serve again")
        if self.metrics is not None and not self.router.frozen:
            from ..middlewares import metrics_middleware

            self.router.prepend_middleware(metrics_middleware(self.metrics))
        if self.workers > 1 and self._sock is None:
            raise ValueError(
                f"workers={self.workers} runs under server.run() (a supervisor forks the "
                "workers); start() and 'async with' serve in this process only: use workers=1"
            )
        self.router.freeze()
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            sock = self._sock
            self._aserver = await loop.create_server(
                self._factory,
                sock=sock,
                ssl=self.tls,
                ssl_handshake_timeout=self._tls_timeout(),
                start_serving=False,
            )
        else:
            self._aserver = await loop.create_server(
                self._factory,
                self.host,
                self.port,
                ssl=self.tls,
                ssl_handshake_timeout=self._tls_timeout(),
                reuse_port=self.reuse_port or None,
                backlog=2048,
                start_serving=False,
            )
        sockname = self._aserver.sockets[0].getsockname()
        self.port = int(sockname[1])
        if self.backplane is None and self.backplane_url is not None:
            from ..backplane import backplane_from_url

            self.backplane = backplane_from_url(self.backplane_url, hub_path=None)
        if self.backplane is not None:
            if self.metrics is not None:
                self.backplane.on_health_change = self.metrics.set_backplane_up
                self.backplane.on_drop = self.metrics.backplane_dropped
            await self.backplane.start(self._from_backplane, self.report_error)
        if self.metrics is not None:
            self.metrics.set_max_concurrency(self.options.max_concurrency)
        self.hooks.run("on_configuration", self.options)
        self._move(Status.RUNNING)
        await self._aserver.start_serving()

    def _factory(self) -> ServerProtocol:
        # Called at accept, before any TLS handshake: the engine's handshake
        # deadline (the whole upgrade) starts here.
        return ServerProtocol(self, next(self._ids))

    def _tls_timeout(self) -> float | None:
        """The TLS part of the upgrade is bounded by handshake_timeout too (not asyncio's 60 s)."""
        if self.tls is None:
            return None
        return self.options.handshake_timeout or None

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.status is Status.RUNNING:
            await self.shutdown()

    async def serve_forever(self) -> None:
        """Start (if needed) and wait until the server is shut down."""
        if self.status is Status.NEW:
            await self.start()
        await self._closed_event.wait()

    def run(self) -> int:
        """Serve until SIGINT/SIGTERM (blocking). With workers > 1, runs the supervisor."""
        if self.workers > 1:
            from ..process.workers import run_workers

            return int(run_workers(self))
        from ..process.workers import run_single

        return int(run_single(self))

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop gracefully: drain the handlers, then close every client (1000).

        1. stop accepting, and stop reading every connection: no new request
           starts (what was already read still runs, in order);
        2. wait up to ``timeout`` (default ``shutdown_timeout``, seconds) for
           running handlers to finish; their replies and sends go out;
        3. cancel the handlers still running (their ``finally`` blocks run);
        4. send Close 1000 to every client and wait up to ``close_timeout``
           for the answers, then drop what is left.

        Raises NotRunning before start, Closing while another shutdown runs and
        Closed after the server closed; TypeError/ValueError for a bad ``timeout``.
        """
        check_timeout(timeout)
        status = self.status
        if status is Status.NEW:
            raise NotRunning("server was never started")
        if status is Status.CLOSING:
            raise Closing("server is already shutting down")
        if status is Status.CLOSED:
            raise Closed("server is already closed")
        self._move(Status.CLOSING)
        handler_timeout = self.options.shutdown_timeout if timeout is None else timeout
        if self._aserver is not None:
            self._aserver.close()
        protos = list(self._tcp)
        for proto in protos:
            proto.stop_reading()
        await asyncio.gather(
            *(p.runner.wait_idle(handler_timeout) for p in protos), return_exceptions=True
        )
        await asyncio.gather(
            *(p.runner.cancel_and_wait(self.options.close_timeout) for p in protos),
            return_exceptions=True,
        )
        for proto in protos:
            proto.resume_for_close()
            if proto.websocket:
                proto.close(1000)
            elif proto.transport is not None:
                proto.transport.close()
        waits = [p.closed for p in protos]
        if waits:
            await asyncio.wait(waits, timeout=self.options.close_timeout + 0.5)
            for proto in protos:
                if not proto.closed.done() and proto.transport is not None:
                    proto.transport.abort()
        if self.backplane is not None:
            try:
                await self.backplane.close()
            except Exception as exc:
                self.report_error(exc)
        self._move(Status.CLOSED)
        self._closed_event.set()
        self.hooks.run("on_close")
        if self._aserver is not None:
            self._aserver.close()

    # ------------------------------------------------------- connections
    def needs_admission(self) -> bool:
        """Whether upgrades must go through the admission checks (auth, origin, limit)."""
        return True

    def admission_check(self, request: Request) -> Rejection | None:
        """Limits and Origin allow-list for a new upgrade; None admits it."""
        if self.status is not Status.RUNNING:
            return Rejection(503, b"server is shutting down\n")
        if len(self._conns) >= self.options.max_connections:
            self.report_error(
                GoomerangError(
                    f"max_connections={self.options.max_connections} reached; upgrade refused"
                )
            )
            return Rejection(503, b"too many connections\n")
        if self.allowed_origins is not None:
            origin = request.header("origin")
            if origin is not None and origin not in self.allowed_origins:
                return Rejection(403, b"origin not allowed\n")
        return None

    def tcp_opened(self, proto: ServerProtocol) -> None:
        """A TCP connection was accepted."""
        self._tcp[proto] = None

    def tcp_closed(self, proto: ServerProtocol) -> None:
        """A TCP connection ended: it stops counting (connections(), the metric) now."""
        self._tcp.pop(proto, None)
        if proto in self._conns:
            self.ws_closed(proto)

    def ws_opened(self, proto: ServerProtocol) -> None:
        """A WebSocket handshake completed."""
        self._conns[proto] = None
        if self.metrics is not None:
            self.metrics.connection_opened()
        self.hooks.run("on_connect", proto.sender)

    def ws_ended(self, proto: ServerProtocol) -> None:
        """A WebSocket connection is CLOSED: it leaves every topic and group (still counted)."""
        for topic in self.topics.unsubscribe_all(proto):
            self._backplane_call("unsubscribe", topic)
        for topic, group in self.groups.leave_all(proto):
            self._group_left(topic, group)

    def ws_closed(self, proto: ServerProtocol) -> None:
        """A WebSocket connection's transport is gone: drop it from the table."""
        if self._conns.pop(proto, 0) is None:
            self.ws_ended(proto)
            if self.metrics is not None:
                self.metrics.connection_closed()
            self.hooks.run("on_disconnect", proto.sender)

    # ---------------------------------------------------------- fan-out
    def _check_running(self) -> None:
        status = self.status
        if status is Status.RUNNING:
            return
        if status is Status.CLOSING:
            raise Closing("server is shutting down")
        raise NotRunning(f"server is {status.name}")

    def _fanout(
        self, frame: bytes, targets: Iterable[ServerProtocol], size: int, report: bool = True
    ) -> list[BroadcastResult]:
        """Write ``frame`` to every target; one BroadcastResult each when ``report``.

        Without ``report`` (a client's command that no ``on_broadcast`` hook
        watches: nobody reads the results) no result is built or timed.
        """
        results: list[BroadcastResult] = []
        perf = time.perf_counter
        defer = self.in_batch
        if not report:
            for proto in list(targets):
                proto.write_prepared(frame, defer)
            return results
        for proto in list(targets):
            t0 = perf()
            ok = proto.write_prepared(frame, defer)
            results.append(BroadcastResult(size, perf() - t0, proto.conn_id, ok))
        return results

    def has_dirty(self) -> bool:
        """Whether fan-out frames wait to be written (see flush_dirty)."""
        return bool(self.dirty)

    def mark_dirty(self, proto: ServerProtocol) -> None:
        """``proto`` has queued fan-out frames to write when the current read is handled."""
        self.dirty.append(proto)

    def flush_dirty(self) -> None:
        """Write what fan-outs queued during the last read, one write per target."""
        dirty = self.dirty
        self.dirty = []
        for proto in dirty:
            proto.flush_fanout()

    async def broadcast(self, message: Message[Any]) -> list[BroadcastResult]:
        """Send ``message`` to every connected client (every worker, with a backplane).

        Raises TypeError for anything but a ``Message``, MessageTooLarge above
        ``max_message_size``, NotRunning/Closing when not RUNNING.
        """
        check_message(message)
        self._check_running()
        return self._broadcast(message)

    def _broadcast(self, message: Message[Any], report: bool = True) -> list[BroadcastResult]:
        t0 = time.perf_counter()
        envelope = pack(message, creation_ns=time.time_ns())
        if len(envelope) > self.options.max_message_size:  # our own limit, before any write
            raise MessageTooLarge(len(envelope), self.options.max_message_size)
        frame = build_frame(OP_BINARY, envelope)
        size = message.payload.ByteSize()
        results = self._fanout(frame, self._conns, size, report or self.hooks.has("on_broadcast"))
        self._backplane_send("broadcast_nowait", message.kind, envelope)
        duration = time.perf_counter() - t0
        if self.metrics is not None:
            self.metrics.broadcast_sent(message.kind, duration)
        self.hooks.run("on_broadcast", message.kind, results, duration)
        return results

    async def publish(self, topic: str, message: Message[Any]) -> list[BroadcastResult]:
        """Send ``message`` to the subscribers of ``topic`` (on every worker/node).

        Every plain subscriber gets it, and one member of each queue group of
        ``topic`` (see :meth:`subscribe`). Raises TypeError for a non-str topic
        or anything but a ``Message``, ValueError for an empty topic (reserved:
        the backplanes use it for broadcast), MessageTooLarge above
        ``max_message_size``, NotRunning/Closing when not RUNNING.
        """
        check_topic(topic)
        if not topic:
            raise ValueError("topic must be a non-empty string (the empty topic is reserved)")
        check_message(message)
        self._check_running()
        return self._publish(topic, message)

    def _publish(self, topic: str, message: Message[Any]) -> list[BroadcastResult]:
        envelope = pack(message, creation_ns=time.time_ns())
        if len(envelope) > self.options.max_message_size:  # our own limit, before any write
            raise MessageTooLarge(len(envelope), self.options.max_message_size)
        frame = build_frame(OP_BINARY, envelope)
        size = message.payload.ByteSize()
        results = self._fanout(frame, self.topics.subscribers(topic), size)
        if topic in self.groups and not self._backplane_routes_groups():
            for group in self.groups.groups(topic):
                proto = self._pick_member(topic, group)
                if proto is not None:
                    results.extend(self._fanout(frame, (proto,), size))
        self._backplane_send("publish_nowait", topic, message.kind, envelope)
        if self.metrics is not None:
            self.metrics.published(topic, message.kind)
        self.hooks.run("on_publish", topic, message.kind)
        return results

    def refuse(self, proto: ServerProtocol, what: str, reason: str) -> None:
        """Drop a client command the authorization refused; tell whoever can be told.

        The server's on_error gets PermissionDenied; a peer that negotiated
        error replies gets an error message (see ``authorization``).
        """
        text = f"{what} refused: {reason}"
        self.report_error(PermissionDenied(f"connection {proto.conn_id} ({proto.peer}): {text}"))
        if proto.error_replies and proto.engine.status is Status.RUNNING:
            proto.send_message(error_message("forbidden", text), "")

    def client_broadcast(self, message: Message[Any], proto: ServerProtocol) -> None:
        """A client asked for a broadcast (BroadcastCmd); applied when authorized."""
        if self.status is not Status.RUNNING:
            return
        if not self.options.client_broadcast:
            self.refuse(proto, f"broadcast of {message.kind}", "client_broadcast is off")
            return
        refused = veto(self.can_broadcast, proto.sender, message)
        if refused is not None:
            self.refuse(proto, f"broadcast of {message.kind}", refused)
            return
        if self.metrics is not None:
            self.metrics.client_broadcast(message.kind)
        self.hooks.run("on_client_broadcast", message.kind)
        try:
            self._broadcast(message, report=False)  # nobody reads the results but on_broadcast
        except MessageTooLarge as exc:  # re-packed with a timestamp: a few bytes more
            self.report_error(exc)

    def client_publish(self, topic: str, message: Message[Any], proto: ServerProtocol) -> None:
        """A client asked to publish (PublishCmd); authorized, non-empty topic."""
        if self.status is not Status.RUNNING or not self._command_topic_ok("publish", topic):
            return
        what = f"publish of {message.kind} to {topic!r}"
        if not topic_allowed(self.options.client_publish, topic):
            self.refuse(proto, what, "topic not allowed by client_publish")
            return
        refused = veto(self.can_publish, proto.sender, topic, message)
        if refused is not None:
            self.refuse(proto, what, refused)
            return
        try:
            self._publish(topic, message)
        except MessageTooLarge as exc:
            self.report_error(exc)

    def client_subscribe(self, topic: str, group: str, proto: ServerProtocol) -> None:
        """A client's SubscribeCmd (``group`` empty for a plain one); applied when authorized."""
        if not self._command_topic_ok("subscribe", topic):
            return
        what = f"subscribe to {topic!r}" + (f" in group {group!r}" if group else "")
        if not topic_allowed(self.options.client_subscribe, topic):
            self.refuse(proto, what, "topic not allowed by client_subscribe")
            return
        refused = veto(self.can_subscribe, proto.sender, topic)
        if refused is not None:
            self.refuse(proto, what, refused)
            return
        self._subscribe(topic, proto, group or None)

    def client_unsubscribe(self, topic: str, group: str, proto: ServerProtocol) -> None:
        """A client's UnsubscribeCmd (``group`` empty for a plain one); empty topic: reported."""
        if self._command_topic_ok("unsubscribe", topic):
            self._unsubscribe(topic, proto, group or None)

    def _command_topic_ok(self, what: str, topic: str) -> bool:
        if topic:
            return True
        # The empty topic is reserved (the backplanes use it for broadcast), so
        # it is refused the same way in one process, N workers and N nodes.
        self.report_error(
            GoomerangError(f"{what} with an empty topic from a client: ignored (topic is reserved)")
        )
        return False

    def subscribe(
        self, topic: str, conn: ServerProtocol | Sender, group: str | None = None
    ) -> None:
        """Put the connection of ``conn`` (a handler's sender) in ``topic``: a room join.

        No authorization applies: the server decides (same as
        ``sender.subscribe(topic)``). With ``group``, the connection joins that
        queue group of ``topic`` instead: each publish to ``topic`` reaches
        every plain subscriber and exactly one member of each group (round
        robin over the members that are open and under ``write_limit``; across
        workers and nodes too). Raises TypeError for a non-str topic or group or
        something that is not a server-side Sender, ValueError for an empty one.
        """
        _check_topic(topic, group)
        self._subscribe(topic, _protocol_of(conn), group)

    def unsubscribe(
        self, topic: str, conn: ServerProtocol | Sender, group: str | None = None
    ) -> None:
        """Remove ``conn`` from ``topic`` (or from its queue ``group``); see :meth:`subscribe`."""
        _check_topic(topic, group)
        self._unsubscribe(topic, _protocol_of(conn), group)

    def _subscribe(self, topic: str, proto: ServerProtocol, group: str | None) -> None:
        if proto not in self._conns:
            return  # closed (or never upgraded): nothing to join
        if group is not None:
            if self.groups.join(topic, group, proto):
                self._backplane_call("join", topic, group)
                self.hooks.run("on_group_join", topic, group)
        elif self.topics.subscribe(topic, proto):
            self._backplane_call("subscribe", topic)
        if self.metrics is not None:
            self.metrics.subscribed(topic)
        if group is None:
            self.hooks.run("on_subscribe", topic)

    def _unsubscribe(self, topic: str, proto: ServerProtocol, group: str | None) -> None:
        if group is not None:
            if self.groups.leave(topic, group, proto):
                self._group_left(topic, group)
        elif self.topics.unsubscribe(topic, proto):
            self._backplane_call("unsubscribe", topic)
        if self.metrics is not None:
            self.metrics.unsubscribed(topic)
        if group is None:
            self.hooks.run("on_unsubscribe", topic)

    def _group_left(self, topic: str, group: str) -> None:
        self._backplane_call("leave", topic, group)
        self.hooks.run("on_group_leave", topic, group)

    # ------------------------------------------------------- queue groups
    def _backplane_routes_groups(self) -> bool:
        """Whether the backplane chooses the group member over every node (when connected)."""
        backplane = self.backplane
        return (
            backplane is not None
            and getattr(backplane, "routes_groups", False)
            and bool(backplane.healthy())
        )

    def _pick_member(self, topic: str, group: str) -> ServerProtocol | None:
        """The next member of ``group`` to get a message (round robin), or None (counted).

        Members that are closing or over ``write_limit`` are skipped; when all
        open members are over it, the least loaded one gets it (the slow
        client limit still applies to it); with no open member it is dropped.
        """
        proto = self.groups.pick(topic, group, self._member_ready)
        if proto is None:
            members = [p for p in self.groups.members(topic, group) if _is_open(p)]
            if members:
                proto = min(members, key=_buffered)
        if self.metrics is not None:
            if proto is None:
                self.metrics.group_dropped(group)
            else:
                self.metrics.group_delivered(group)
        return proto

    def _member_ready(self, proto: ServerProtocol) -> bool:
        return _is_open(proto) and _buffered(proto) <= self.options.write_limit

    # -------------------------------------------------------- backplane
    def _backplane_call(self, method: str, *args: Any) -> None:
        backplane = self.backplane
        if backplane is None or self.status is Status.CLOSED:
            return
        try:
            coro = getattr(backplane, method)(*args)
        except Exception as exc:
            self.report_error(exc)
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._backplane_done)

    def _backplane_send(self, method: str, *args: Any) -> None:
        """Hand a fan-out to the backplane: queued at once (bounded in bytes), no task."""
        backplane = self.backplane
        if backplane is None or self.status is Status.CLOSED:
            return
        try:
            getattr(backplane, method)(*args)
        except Exception as exc:
            self.report_error(exc)

    def _backplane_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self.report_error(exc)

    def _from_backplane(self, msg: Any) -> None:
        """Deliver a message that another worker or node fanned out."""
        frame = build_frame(OP_BINARY, msg.frame)
        if msg.groups_only:
            targets = []
        else:
            targets = self.topics.subscribers(msg.topic) if msg.topic else list(self._conns)
        for group in msg.groups:
            member = self._pick_member(msg.topic, group)
            if member is not None:
                targets.append(member)
        for proto in targets:
            proto.write_prepared(frame, True)
        # The backplane delivers every message of one read before the loop
        # runs this: each target gets one write for all of them.
        if self.dirty and not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush_later)

    def _flush_later(self) -> None:
        self._flush_soon = False
        self.flush_dirty()


def _check_workers(workers: Any) -> int:
    """``workers``: an int >= 1, or "auto" (one per CPU)."""
    if workers == "auto":
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be an int >= 1 or 'auto', got {workers!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1 (or 'auto'), got {workers}")
    return workers


def _check_topic(topic: str, group: str | None) -> None:
    check_topic(topic)
    if group is not None:
        check_topic(group, "group")
    if not topic:
        raise ValueError("topic must be a non-empty string (the empty topic is reserved)")
    if group is not None and not group:
        raise ValueError("group must be a non-empty string (or None for a plain subscription)")


def _protocol_of(conn: ServerProtocol | Sender) -> ServerProtocol:
    proto = conn.connection if isinstance(conn, Sender) else conn
    if not isinstance(proto, ServerProtocol):
        raise TypeError(
            f"sender must be a server-side Sender (a handler's first argument), got {conn!r}"
        )
    return proto


def _is_open(proto: ServerProtocol) -> bool:
    transport = proto.transport
    return (
        proto.engine.status is Status.RUNNING
        and transport is not None
        and not transport.is_closing()
    )


def _buffered(proto: ServerProtocol) -> int:
    transport = proto.transport
    return transport.get_write_buffer_size() if transport is not None else 0


__all__ = ["BroadcastResult", "Server", "prepare"]
