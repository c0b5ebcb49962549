"""The goomerang server on trio: the asyncio ``Server``'s API shape, on the same engine.

    server = Server("127.0.0.1:0")
    server.handle(MessageV1, handler)         # handler(sender, message), plain or async
    async with server:                        # listens; shutdown() on exit
        ... server.addr ...

or ``await nursery.start(server.serve)`` in a nursery of your own. Handlers,
middlewares, hooks, broadcast and publish/subscribe (with the client commands)
behave as on asyncio, in one process, with the engine's deadlines (handshake,
keep-alive pings, close) and flow control. Not here (asyncio runtime only):
worker processes and backplanes, queue groups, custom HTTP routes (other paths
get 404), authentication, TLS, connection limits and metrics.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import trio

from goomerang_proto import (
    AlreadyRunning,
    Closed,
    Closing,
    GoomerangError,
    Message,
    NotRunning,
    ServerConnection,
    Side,
    Status,
    Topics,
    prepare,
)
from goomerang_proto import events as ev

from ..address import parse_listen
from ..asyncio.server import BroadcastResult
from ..endpoint import Endpoint
from ..hooks import SERVER_HOOKS
from ..options import ServerOptions
from ..sender import Sender
from ..validate import check_message, check_topic
from .connection import Connection, NurseryContext, refuse_unsupported

# Server options this runtime does not enforce: a value other than the default is refused,
# never silently ignored (the asyncio Server has them).
_NOT_ON_TRIO = (
    "max_connections",
    "max_queue_bytes",
    "client_subscribe",
    "client_publish",
    "client_broadcast",
)


class Server(NurseryContext, Endpoint):
    """A goomerang server on trio; every :class:`ServerOptions` field is a keyword argument."""

    def __init__(self, listen: str = "127.0.0.1:8080", **kwargs: Any) -> None:
        self.host, self.port = parse_listen(listen)
        self._setup(ServerOptions, SERVER_HOOKS, Side.SERVER, kwargs, "Server")
        refuse_unsupported(self.options, ServerOptions(), _NOT_ON_TRIO)
        self.topics: Topics[Connection] = Topics()
        self._conns: set[Connection] = set()
        self._ids = itertools.count(1)
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()

    @property
    def addr(self) -> str:
        """``host:port`` actually bound (port 0 resolved once listening)."""
        return f"{self.host}:{self.port}"

    def connections(self) -> int:
        """Open WebSocket connections."""
        return len(self._conns)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until :meth:`shutdown` (``nursery.start`` returns once listening).
        Raises AlreadyRunning when serving already, Closed after a shutdown."""
        if self.status is not Status.NEW:
            if self._stopped.is_set():
                raise Closed("server was shut down; make a new one")
            raise AlreadyRunning(f"server is {self.status.name}")
        self.router.freeze()
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.port = int(listeners[0].socket.getsockname()[1])
        self._move(Status.RUNNING)
        self.hooks.run("on_configuration", self.options)
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    task_status.started()
                    await trio.serve_listeners(self._serve_one, listeners, handler_nursery=nursery)
        finally:
            self._stopped.set()

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        o = self.options
        engine = ServerConnection(
            registry=self.router.registry,
            max_message_size=o.max_message_size,
            max_request_size=o.max_request_size,
            clock=time.time_ns,
            handshake_timeout=o.handshake_timeout,
            ping_interval=o.ping_interval or None,
            ping_timeout=o.ping_timeout or None,
            close_timeout=o.close_timeout,
            high_water=o.write_limit,
            max_buffered=o.slow_client_limit or None,
            overflow_code=o.slow_client_code,
            now=trio.current_time(),
        )
        await Connection(stream, engine, self, next(self._ids), in_response=True).run()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Close every client with 1000, wait for the answers and the handlers (at most
        close_timeout + ``timeout``, default shutdown_timeout, seconds); end CLOSED."""
        if self.status is not Status.RUNNING:
            return
        self._move(Status.CLOSING)
        conns = list(self._conns)
        for conn in conns:
            conn.close(1000)
        limit = self.options.shutdown_timeout if timeout is None else timeout
        with trio.move_on_after(self.options.close_timeout + limit):
            for conn in conns:
                await conn.closed.wait()
        self._scope.cancel()
        await self._stopped.wait()
        self._move(Status.CLOSED)
        self.hooks.run("on_close")

    async def _enter(self, nursery: trio.Nursery) -> None:
        await nursery.start(self.serve)

    async def _leave(self) -> None:
        await self.shutdown()

    def _check_running(self) -> None:
        if self.status is Status.CLOSING:
            raise Closing("server is shutting down")
        if self.status is not Status.RUNNING:
            raise NotRunning(f"server is {self.status.name}")

    def _fanout(
        self, message: Message[Any], targets: list[Connection], origin: Connection | None = None
    ) -> list[BroadcastResult]:
        frame = prepare(message, creation_ns=time.time_ns())
        size, results = message.payload.ByteSize(), []
        for conn in targets:  # a target past slow_client_limit is failed by its engine
            t0 = time.perf_counter()
            ok = conn.engine.status is Status.RUNNING and conn.write_prepared(
                frame, in_response=conn is origin
            )
            results.append(BroadcastResult(size, time.perf_counter() - t0, conn.conn_id, ok))
        return results

    async def broadcast(self, message: Message[Any]) -> list[BroadcastResult]:
        """Send ``message`` to every connected client; one result per client."""
        return self._broadcast(message, None)

    def _broadcast(self, message: Message[Any], origin: Connection | None) -> list[BroadcastResult]:
        check_message(message)
        self._check_running()
        t0 = time.perf_counter()
        results = self._fanout(message, list(self._conns), origin)
        self.hooks.run("on_broadcast", message.kind, results, time.perf_counter() - t0)
        return results

    async def publish(self, topic: str, message: Message[Any]) -> list[BroadcastResult]:
        """Send ``message`` to the subscribers of ``topic``; one result per subscriber."""
        return self._publish(topic, message, None)

    def _publish(
        self, topic: str, message: Message[Any], origin: Connection | None
    ) -> list[BroadcastResult]:
        check_topic(topic)
        check_message(message)
        self._check_running()
        results = self._fanout(message, self.topics.subscribers(topic), origin)
        self.hooks.run("on_publish", topic, message.kind)
        return results

    async def on_event(self, conn: Connection, event: ev.Event) -> None:
        """One engine event of ``conn`` (the connection calls this after each read)."""
        if isinstance(event, ev.MessageReceived | ev.SyncRequestReceived):
            message = event.message
            chain = self.router.resolve(message.kind)
            if chain is None:
                self.report_error(GoomerangError(f"no handler for kind {message.kind!r}"))
            else:
                await conn.submit(chain, Sender(conn, message.uuid), message)
        elif isinstance(event, ev.BroadcastRequested):
            self.hooks.run("on_client_broadcast", event.message.kind)
            if self.status is Status.RUNNING:
                self._broadcast(event.message, conn)
        elif isinstance(event, ev.PublishRequested):
            if not event.topic:  # both backplanes use "" for broadcast: refused everywhere
                self.report_error(GoomerangError("publish with an empty topic ignored"))
            elif self.status is Status.RUNNING:
                self._publish(event.topic, event.message, conn)
        elif isinstance(event, ev.SubscribeRequested) and not event.topic:
            self.report_error(GoomerangError("subscribe to an empty topic ignored"))
        elif isinstance(event, ev.SubscribeRequested):
            held, cap = self.topics.topics_of(conn), self.options.max_subscriptions
            if event.group or (event.topic not in held and len(held) >= cap):
                why = "queue groups are asyncio only" if event.group else f"max_subscriptions={cap}"
                self.report_error(GoomerangError(f"subscribe to {event.topic!r} ignored: {why}"))
            else:
                self.topics.subscribe(event.topic, conn)
                self.hooks.run("on_subscribe", event.topic)
        elif isinstance(event, ev.UnsubscribeRequested):
            self.topics.unsubscribe(event.topic, conn)
            self.hooks.run("on_unsubscribe", event.topic)
        elif isinstance(event, ev.HttpRequest):
            assert isinstance(conn.engine, ServerConnection)
            conn.engine.send_http_response(404, body=b"not found\n")
        elif isinstance(event, ev.ErrorOccurred):
            self.report_error(event.error)
        elif isinstance(event, ev.Connected):
            self._conns.add(conn)
            self.hooks.run("on_connect", Sender(conn))
        elif isinstance(event, ev.ConnectionClosed) and conn in self._conns:
            self._conns.discard(conn)
            self.topics.unsubscribe_all(conn)
            if event.error is not None:
                self.report_error(event.error)
            self.hooks.run("on_disconnect", Sender(conn))


__all__ = ["BroadcastResult", "Server"]
