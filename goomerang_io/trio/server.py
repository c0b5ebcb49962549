"""The goomerang server on trio: the asyncio ``Server``'s API shape, on the same engine.

    server = Server("127.0.0.1:0")
    server.handle(MessageV1, handler)         # handler(sender, message), plain or async
    async with server:                        # listens; shutdown() on exit
        ... server.addr ...

or ``await nursery.start(server.serve)`` in a nursery of your own. Handlers,
middlewares, hooks, error replies, broadcast and publish/subscribe (the client
commands with their rules: :mod:`goomerang_io.handling`) behave as on asyncio, in
one process, with the engine's deadlines and flow control. Not here (asyncio
only): worker processes and backplanes, queue groups, custom HTTP routes (other
paths get 404), authentication, TLS, connection limits and metrics.
"""

from __future__ import annotations

import itertools
from typing import Any

import trio

from goomerang_proto import AlreadyRunning, Closed, Message, Side, Status
from goomerang_proto import events as ev

from ..address import parse_listen
from ..endpoint import Endpoint
from ..engines import server_engine
from ..handling.commands import CommandRules
from ..handling.handlers import Job
from ..handling.server_events import ServerEvents
from ..hooks import SERVER_HOOKS
from ..options import ServerOptions, refuse_unsupported
from ..results import BroadcastResult
from ..validate import check_message, check_topic
from .connection import Connection, NurseryContext


class Server(NurseryContext, Endpoint):
    """A goomerang server on trio; every :class:`ServerOptions` field is a keyword argument
    (``max_connections`` and ``max_queue_bytes`` only at their defaults: TypeError), plus
    the ``can_subscribe``, ``can_publish`` and ``can_broadcast`` vetoes."""

    def __init__(
        self,
        listen: str = "127.0.0.1:8080",
        *,
        can_subscribe: Any = None,
        can_publish: Any = None,
        can_broadcast: Any = None,
        **kwargs: Any,
    ) -> None:
        self.host, self.port = parse_listen(listen)
        self._setup(ServerOptions, SERVER_HOOKS, Side.SERVER, kwargs, "Server")
        refuse_unsupported(self.options, ("max_connections", "max_queue_bytes"), "trio")
        rules = CommandRules(
            self.options, self.report_error, can_subscribe, can_publish, can_broadcast
        )
        self._events: ServerEvents[Connection, BroadcastResult]
        self._events = ServerEvents(self, rules, BroadcastResult)
        self.topics = self._events.topics
        self._ids = itertools.count(1)
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()

    @property
    def addr(self) -> str:
        """``host:port`` actually bound (port 0 resolved once listening)."""
        return f"{self.host}:{self.port}"

    def connections(self) -> int:
        """Open WebSocket connections."""
        return len(self._events.conns)

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
        o, now = self.options, trio.current_time()
        engine = server_engine(o, self.router.registry, now, auto_accept=False)
        await Connection(stream, engine, self, next(self._ids), in_response=True).run()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Close every client with 1000, wait for the answers and the handlers (at most
        close_timeout + ``timeout``, default shutdown_timeout, seconds); end CLOSED."""
        if self.status is not Status.RUNNING:
            return
        self._move(Status.CLOSING)
        conns = list(self._events.conns)
        for conn in conns:
            conn.close(1000)
        limit = self.options.shutdown_timeout if timeout is None else timeout
        me = trio.lowlevel.current_task()
        mine = [conn for conn in conns if conn.runs(me)]  # called from a handler of ours
        wait = self.options.close_timeout + limit
        with trio.move_on_after(wait):
            for conn in conns:
                if conn in mine:
                    await conn.wait_stream_closed(wait)
                else:
                    await conn.closed.wait()
        self._scope.cancel()
        if not mine:  # serve() ends once the calling handler does: it cannot wait for that
            await self._stopped.wait()
        self._move(Status.CLOSED)
        self.hooks.run("on_close")

    async def _enter(self, nursery: trio.Nursery) -> None:
        await nursery.start(self.serve)

    async def _leave(self) -> None:
        await self.shutdown()

    async def broadcast(self, message: Message[Any]) -> list[BroadcastResult]:
        """Send ``message`` to every connected client; one result per client."""
        check_message(message)
        self._require_running()
        return self._events.broadcast(message)

    async def publish(self, topic: str, message: Message[Any]) -> list[BroadcastResult]:
        """Send ``message`` to the subscribers of ``topic``; one result per subscriber."""
        check_topic(topic)
        check_message(message)
        self._require_running()
        return self._events.publish(topic, message)

    def on_event(self, conn: Connection, event: ev.Event) -> Job | None:
        """One engine event of ``conn`` (the connection calls this after each read)."""
        return self._events.handle(conn, event)


__all__ = ["BroadcastResult", "Server"]
