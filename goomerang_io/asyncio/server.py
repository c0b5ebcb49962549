"""The asyncio goomerang server."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import ssl
from collections.abc import Callable, Iterable
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

from ..address import parse_listen
from ..endpoint import Endpoint
from ..handling.commands import CommandRules
from ..hooks import SERVER_HOOKS
from ..http import Rejection, Request, RouteHandler, guard_route
from ..keywords import ServerKeywords
from ..options import ServerOptions
from ..results import BroadcastResult
from ..sender import Sender
from ..validate import check_message, check_timeout, check_topic
from .backplane_bridge import BackplaneBridge
from .commands import ClientCommands
from .fanout import Fanout
from .server_protocol import ServerProtocol
from .subscriptions import Subscriptions, check_subscription, protocol_of

_RESERVED_PATHS = ("/ws", "/wss")


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
        rules = CommandRules(
            self.options, self.report_error, can_subscribe, can_publish, can_broadcast
        )
        if authenticate is not None and not callable(authenticate):
            raise TypeError(f"authenticate must be callable, got {type(authenticate).__name__}")
        self.routes: dict[str, RouteHandler] = {}
        self.metrics = metrics
        self.backplane_url = backplane if isinstance(backplane, str) else None
        self.authenticate = authenticate
        self.allowed_origins = frozenset(allowed_origins) if allowed_origins is not None else None
        self.workers = _check_workers(workers)
        self.reuse_port = reuse_port or self.workers > 1
        self.worker_index = 0
        self._aserver: asyncio.AbstractServer | None = None
        self._conns: dict[ServerProtocol, None] = {}
        self._tcp: dict[ServerProtocol, None] = {}
        self._ids = itertools.count(1)
        self._ws_path = "/wss" if tls is not None else "/ws"
        self._sock: Any = None
        self._closed_event = asyncio.Event()
        # Fan-out batching: while a connection handles a read, prepared frames
        # are queued on their targets, which are flushed once it is done.
        self.in_batch = False
        self.dirty: list[ServerProtocol] = []
        """Connections with fan-out frames queued during the current read (flush_dirty)."""
        self._bridge = BackplaneBridge(self, None if isinstance(backplane, str) else backplane)
        self._subscriptions = Subscriptions(self, self._conns, self._bridge)
        self.topics: Topics[ServerProtocol] = self._subscriptions.topics
        self.groups: Groups[ServerProtocol] = self._subscriptions.groups
        self._fanout = Fanout(self, self._conns, self._subscriptions, self._bridge)
        self._commands = commands = ClientCommands(self, rules, self._fanout, self._subscriptions)
        # Called by each connection (ServerSide): the commands' own methods, no forwarding.
        self.client_broadcast = commands.broadcast
        self.client_publish = commands.publish
        self.client_subscribe = commands.subscribe
        self.client_unsubscribe = commands.unsubscribe
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
        return self.ended

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
        await self._bridge.start(self.backplane_url, self._fanout.from_backplane)
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
        me = asyncio.current_task()  # a handler that shuts the server down is not waited for
        await asyncio.gather(
            *(p.runner.wait_idle(handler_timeout, me) for p in protos), return_exceptions=True
        )
        await asyncio.gather(
            *(p.runner.cancel_and_wait(self.options.close_timeout, me) for p in protos),
            return_exceptions=True,
        )
        for proto in protos:
            proto.resume_for_close(me)
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
        await self._bridge.close()
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
        self._subscriptions.drop(proto)

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
        return self._fanout.broadcast(message)

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
        return self._fanout.publish(topic, message)

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
        check_subscription(topic, group)
        self._subscriptions.subscribe(topic, protocol_of(conn), group)

    def unsubscribe(
        self, topic: str, conn: ServerProtocol | Sender, group: str | None = None
    ) -> None:
        """Remove ``conn`` from ``topic`` (or from its queue ``group``); see :meth:`subscribe`."""
        check_subscription(topic, group)
        self._subscriptions.unsubscribe(topic, protocol_of(conn), group)

    @property
    def can_subscribe(self) -> Callable[[Sender, str], bool] | None:
        """The ``can_subscribe(sender, topic)`` veto of clients' subscriptions, or None."""
        return self._commands.rules.can_subscribe

    @property
    def can_publish(self) -> Callable[[Sender, str, Message[Any]], bool] | None:
        """The ``can_publish(sender, topic, message)`` veto of clients' publishes, or None."""
        return self._commands.rules.can_publish

    @property
    def can_broadcast(self) -> Callable[[Sender, Message[Any]], bool] | None:
        """The ``can_broadcast(sender, message)`` veto of clients' broadcasts, or None."""
        return self._commands.rules.can_broadcast

    @property
    def backplane(self) -> Any:
        """The backplane (None without one); created from the URL at start."""
        return self._bridge.backplane

    @backplane.setter
    def backplane(self, backplane: Any) -> None:
        self._bridge.backplane = backplane


def _check_workers(workers: Any) -> int:
    """``workers``: an int >= 1, or "auto" (one per CPU)."""
    if workers == "auto":
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be an int >= 1 or 'auto', got {workers!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1 (or 'auto'), got {workers}")
    return workers


__all__ = ["BroadcastResult", "Server", "prepare"]
