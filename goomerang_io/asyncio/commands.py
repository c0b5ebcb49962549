"""Client commands (BroadcastCmd, PublishCmd, SubscribeCmd, UnsubscribeCmd) applied on asyncio.

Whether a command is allowed is :class:`~goomerang_io.handling.commands.CommandRules`'
call (the same rules on every runtime); this module applies what they allow.
"""

from __future__ import annotations

from typing import Any

from goomerang_proto import Message, Status
from goomerang_proto.errors import MessageTooLarge

from ..handling.commands import CommandRules
from .fanout import Fanout
from .server_protocol import ServerProtocol
from .server_view import ServerView
from .subscriptions import Subscriptions


class ClientCommands:
    """Applies what clients ask of a server when ``rules`` allow it (see CommandRules).

    Broadcasts and publishes go out only while the server is RUNNING; a
    fan-out too large once re-packed is reported, not raised.
    """

    def __init__(
        self,
        server: ServerView,
        rules: CommandRules,
        fanout: Fanout,
        subscriptions: Subscriptions,
    ) -> None:
        self.server = server
        self.rules = rules
        self._fanout = fanout
        self._subscriptions = subscriptions

    def broadcast(self, message: Message[Any], proto: ServerProtocol) -> None:
        """A client asked for a broadcast (BroadcastCmd); applied when authorized."""
        server = self.server
        if server.status is not Status.RUNNING or not self.rules.broadcast(proto, message):
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
        if server.status is not Status.RUNNING or not self.rules.publish(proto, topic, message):
            return
        try:
            self._fanout.publish(topic, message)
        except MessageTooLarge as exc:
            server.report_error(exc)

    def subscribe(self, topic: str, group: str, proto: ServerProtocol) -> None:
        """A client's SubscribeCmd (``group`` empty for a plain one); applied when authorized.

        Counted against ``max_subscriptions`` in ``proto.subscriptions`` once allowed.
        """
        if self.rules.subscribe(proto, topic, group, proto.subscriptions):
            self._subscriptions.subscribe(topic, proto, group or None)

    def unsubscribe(self, topic: str, group: str, proto: ServerProtocol) -> None:
        """A client's UnsubscribeCmd (``group`` empty for a plain one); empty topic: reported."""
        if self.rules.unsubscribe(topic, group, proto.subscriptions):
            self._subscriptions.unsubscribe(topic, proto, group or None)
