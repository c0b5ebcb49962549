"""Who gets a topic's messages: plain subscribers and queue groups (membership, member picking)."""

from __future__ import annotations

from goomerang_proto import Groups, Status, Topics

from ..sender import Sender
from ..validate import check_topic
from .backplane_bridge import BackplaneBridge
from .server_protocol import ServerProtocol
from .server_view import ServerView


class Subscriptions:
    """A server's topic and queue-group tables, kept in step with its backplane.

    ``conns`` is the server's table of WebSocket connections: only those can
    join. Every change is announced to the backplane (other workers and nodes
    route on it) and to the server's hooks and metrics.
    """

    def __init__(
        self, server: ServerView, conns: dict[ServerProtocol, None], bridge: BackplaneBridge
    ) -> None:
        self.server = server
        self.topics: Topics[ServerProtocol] = Topics()
        self.groups: Groups[ServerProtocol] = Groups()
        self._conns = conns
        self._bridge = bridge

    def subscribe(self, topic: str, proto: ServerProtocol, group: str | None) -> None:
        """Put ``proto`` in ``topic`` (or in its queue ``group``); a closed one joins nothing."""
        if proto not in self._conns:
            return  # closed (or never upgraded): nothing to join
        server = self.server
        if group is not None:
            if self.groups.join(topic, group, proto):
                self._bridge.call("join", topic, group)
                server.hooks.run("on_group_join", topic, group)
        elif self.topics.subscribe(topic, proto):
            self._bridge.call("subscribe", topic)
        if server.metrics is not None:
            server.metrics.subscribed(topic)
        if group is None:
            server.hooks.run("on_subscribe", topic)

    def unsubscribe(self, topic: str, proto: ServerProtocol, group: str | None) -> None:
        """Remove ``proto`` from ``topic`` (or from its queue ``group``)."""
        server = self.server
        if group is not None:
            if self.groups.leave(topic, group, proto):
                self._group_left(topic, group)
        elif self.topics.unsubscribe(topic, proto):
            self._bridge.call("unsubscribe", topic)
        if server.metrics is not None:
            server.metrics.unsubscribed(topic)
        if group is None:
            server.hooks.run("on_unsubscribe", topic)

    def drop(self, proto: ServerProtocol) -> None:
        """``proto`` is CLOSED: it leaves every topic and group."""
        for topic in self.topics.unsubscribe_all(proto):
            self._bridge.call("unsubscribe", topic)
        for topic, group in self.groups.leave_all(proto):
            self._group_left(topic, group)

    def _group_left(self, topic: str, group: str) -> None:
        self._bridge.call("leave", topic, group)
        self.server.hooks.run("on_group_leave", topic, group)

    # ------------------------------------------------------- queue groups
    def pick_member(self, topic: str, group: str) -> ServerProtocol | None:
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
        metrics = self.server.metrics
        if metrics is not None:
            if proto is None:
                metrics.group_dropped(group)
            else:
                metrics.group_delivered(group)
        return proto

    def _member_ready(self, proto: ServerProtocol) -> bool:
        return _is_open(proto) and _buffered(proto) <= self.server.options.write_limit


def check_subscription(topic: str, group: str | None) -> None:
    """A topic (and group) the server's own subscribe accepts: non-empty strings.

    Raises TypeError for a non-str one and ValueError for an empty one (the
    empty topic is reserved: the backplanes use it for broadcast).
    """
    check_topic(topic)
    if group is not None:
        check_topic(group, "group")
    if not topic:
        raise ValueError("topic must be a non-empty string (the empty topic is reserved)")
    if group is not None and not group:
        raise ValueError("group must be a non-empty string (or None for a plain subscription)")


def protocol_of(conn: ServerProtocol | Sender) -> ServerProtocol:
    """The server connection behind ``conn`` (a handler's sender); TypeError for anything else."""
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
