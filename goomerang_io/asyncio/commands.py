"""Client commands (BroadcastCmd, PublishCmd, SubscribeCmd, UnsubscribeCmd): authorize, apply."""

from __future__ import annotations

from typing import Any

from goomerang_proto import GoomerangError, Message, Status
from goomerang_proto.errors import MessageTooLarge, PermissionDenied

from ..authorization import error_message, topic_allowed, veto
from .fanout import Fanout
from .server_protocol import ServerProtocol
from .server_view import ServerView
from .subscriptions import Subscriptions


class ClientCommands:
    """Applies what clients ask of a server, when its options and ``can_*`` rules allow it.

    A refused command is dropped and reported (see :meth:`refuse`); the empty
    topic is reserved (the backplanes use it for broadcast) and ignored.
    """

    def __init__(self, server: ServerView, fanout: Fanout, subscriptions: Subscriptions) -> None:
        self.server = server
        self._fanout = fanout
        self._subscriptions = subscriptions

    def refuse(self, proto: ServerProtocol, what: str, reason: str) -> None:
        """Drop a client command the authorization refused; tell whoever can be told.

        The server's on_error gets PermissionDenied; a peer that negotiated
        error replies gets an error message (see ``authorization``).
        """
        text = f"{what} refused: {reason}"
        self.server.report_error(
            PermissionDenied(f"connection {proto.conn_id} ({proto.peer}): {text}")
        )
        if proto.error_replies and proto.engine.status is Status.RUNNING:
            proto.send_message(error_message("forbidden", text), "")

    def broadcast(self, message: Message[Any], proto: ServerProtocol) -> None:
        """A client asked for a broadcast (BroadcastCmd); applied when authorized."""
        server = self.server
        if server.status is not Status.RUNNING:
            return
        if not server.options.client_broadcast:
            self.refuse(proto, f"broadcast of {message.kind}", "client_broadcast is off")
            return
        refused = veto(server.can_broadcast, proto.sender, message)
        if refused is not None:
            self.refuse(proto, f"broadcast of {message.kind}", refused)
            return
        if server.metrics is not None:
            server.metrics.client_broadcast(message.kind)
        server.hooks.run("on_client_broadcast", message.kind)
        try:
            self._fanout.broadcast(message, report=False)  # only on_broadcast reads the results
        except MessageTooLarge as exc:  # re-packed with a timestamp: a few bytes more
            server.report_error(exc)

    def publish(self, topic: str, message: Message[Any], proto: ServerProtocol) -> None:
        """A client asked to publish (PublishCmd); authorized, non-empty topic."""
        server = self.server
        if server.status is not Status.RUNNING or not self._topic_ok("publish", topic):
            return
        what = f"publish of {message.kind} to {topic!r}"
        if not topic_allowed(server.options.client_publish, topic):
            self.refuse(proto, what, "topic not allowed by client_publish")
            return
        refused = veto(server.can_publish, proto.sender, topic, message)
        if refused is not None:
            self.refuse(proto, what, refused)
            return
        try:
            self._fanout.publish(topic, message)
        except MessageTooLarge as exc:
            server.report_error(exc)

    def subscribe(self, topic: str, group: str, proto: ServerProtocol) -> None:
        """A client's SubscribeCmd (``group`` empty for a plain one); applied when authorized."""
        if not self._topic_ok("subscribe", topic):
            return
        server = self.server
        what = f"subscribe to {topic!r}" + (f" in group {group!r}" if group else "")
        if not topic_allowed(server.options.client_subscribe, topic):
            self.refuse(proto, what, "topic not allowed by client_subscribe")
            return
        refused = veto(server.can_subscribe, proto.sender, topic)
        if refused is not None:
            self.refuse(proto, what, refused)
            return
        self._subscriptions.subscribe(topic, proto, group or None)

    def unsubscribe(self, topic: str, group: str, proto: ServerProtocol) -> None:
        """A client's UnsubscribeCmd (``group`` empty for a plain one); empty topic: reported."""
        if self._topic_ok("unsubscribe", topic):
            self._subscriptions.unsubscribe(topic, proto, group or None)

    def _topic_ok(self, what: str, topic: str) -> bool:
        if topic:
            return True
        # The empty topic is reserved (the backplanes use it for broadcast), so
        # it is refused the same way in one process, N workers and N nodes.
        self.server.report_error(
            GoomerangError(f"{what} with an empty topic from a client: ignored (topic is reserved)")
        )
        return False
