"""A server's engine events, turned into handler runs, client commands and hook calls.

One process's bookkeeping, for any runtime: the open WebSocket connections,
their topics, the fan-out of broadcast and publish, and what each event of a
connection's engine means (:meth:`ServerEvents.handle`). A message or sync
request becomes a *job* (chain, sender, message) that the runtime runs with its
own concurrency rule; everything else is applied here, without waiting. What
it leaves to richer runtimes (the asyncio server's): worker processes and
backplanes, queue groups (refused, reported), custom HTTP routes (404 here),
authentication, connection limits and metrics. Upgrades are admitted here
(engines made with ``auto_accept=False``) while the server is RUNNING, refused
with 503 once it is shutting down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from goomerang_proto import Message, Status, Topics
from goomerang_proto import events as ev

from ..authorization import ERROR_REPLIES
from ..sender import Sender
from .commands import CommandRules
from .fanout import fan_out
from .handlers import Job
from .requests import Requests

__all__ = ["ServerEvents"]

R = TypeVar("R")


class Conn(Protocol):
    """A server-side connection as this module sees it (the runtime's connection)."""

    conn_id: int
    peer: tuple[str, int] | None
    identity: Any
    sender: Sender
    error_replies: bool
    subscriptions: set[tuple[str, str]]

    @property
    def engine(self) -> Any: ...  # a ServerConnection

    def send_message(self, message: Message[Any], uuid: str) -> Any: ...

    def write_prepared(self, frame: bytes, *, in_response: bool = False) -> bool: ...

    def close(self, code: int = 1000) -> Any: ...

    def __hash__(self) -> int: ...


C = TypeVar("C", bound=Conn)


class Owner(Protocol):
    """The server (an :class:`~goomerang_io.endpoint.Endpoint`)."""

    @property
    def status(self) -> Status: ...

    hooks: Any
    router: Any

    def report_error(self, exc: BaseException) -> None: ...


class ServerEvents(Generic[C, R]):
    """The connections of ``server`` and the meaning of their events; ``rules`` decide the
    client commands, ``result`` builds each fan-out target's report."""

    def __init__(
        self, server: Owner, rules: CommandRules, result: Callable[[int, float, int, bool], R]
    ) -> None:
        self.server, self.rules, self.result = server, rules, result
        self._requests: Requests | None = None
        self.conns: set[C] = set()
        self.topics: Topics[C] = Topics()

    def broadcast(self, message: Message[Any], origin: C | None = None) -> list[R]:
        """Queue ``message`` on every open connection; on_broadcast hooks get the results."""
        t0 = time.perf_counter()
        results = fan_out(message, self.conns, origin, self.result)
        self.server.hooks.run("on_broadcast", message.kind, results, time.perf_counter() - t0)
        return results

    def publish(self, topic: str, message: Message[Any], origin: C | None = None) -> list[R]:
        """Queue ``message`` on the subscribers of ``topic``; on_publish hooks run."""
        results = fan_out(message, self.topics.subscribers(topic), origin, self.result)
        self.server.hooks.run("on_publish", topic, message.kind)
        return results

    def handle(self, conn: C, event: ev.Event) -> Job | None:
        """Apply one event of ``conn``'s engine; a message or sync request gives its job."""
        server, rules, hooks = self.server, self.rules, self.server.hooks
        running = server.status is Status.RUNNING
        if self._requests is None:  # the router is frozen once the server started
            self._requests = Requests(server.router, server.report_error)
        if isinstance(event, ev.MessageReceived | ev.SyncRequestReceived):
            message = event.message
            chain = self._requests.handler_for(message, conn)
            if chain is not None:
                return chain, Sender(conn, message.uuid), message
        elif isinstance(event, ev.BroadcastRequested):
            if running and rules.broadcast(conn, event.message):
                hooks.run("on_client_broadcast", event.message.kind)
                self.broadcast(event.message, conn)
        elif isinstance(event, ev.PublishRequested):
            if running and rules.publish(conn, event.topic, event.message):
                self.publish(event.topic, event.message, conn)
        elif isinstance(event, ev.SubscribeRequested):
            if event.group:
                rules.refuse(conn, f"subscribe to {event.topic!r}", "queue groups are asyncio only")
            elif rules.subscribe(conn, event.topic, "", conn.subscriptions):
                self.topics.subscribe(event.topic, conn)
                hooks.run("on_subscribe", event.topic)
        elif isinstance(event, ev.UnsubscribeRequested):
            if rules.unsubscribe(event.topic, event.group, conn.subscriptions):
                self.topics.unsubscribe(event.topic, conn)
                hooks.run("on_unsubscribe", event.topic)
        elif isinstance(event, ev.HandshakeRequest):  # engines made with auto_accept=False
            if running:
                conn.engine.accept()  # keep-alive from the read that carried the request
            else:  # as the asyncio server's admission: no new connection once closing
                conn.engine.reject(503, b"server is shutting down\n")
        elif isinstance(event, ev.HttpRequest):
            conn.engine.send_http_response(404, body=b"not found\n")
        elif isinstance(event, ev.ErrorOccurred):
            self._requests.error(event.error, conn)
        elif isinstance(event, ev.Connected):
            conn.error_replies = ERROR_REPLIES in conn.engine.extensions
            self.conns.add(conn)
            hooks.run("on_connect", conn.sender)
        elif isinstance(event, ev.ConnectionClosed) and conn in self.conns:
            self.conns.discard(conn)
            self.topics.unsubscribe_all(conn)
            if event.error is not None:
                server.report_error(event.error)
            hooks.run("on_disconnect", conn.sender)
        return None
