"""A server's rules for the commands clients send: BroadcastCmd, PublishCmd, SubscribeCmd and
UnsubscribeCmd. The rules are the asyncio server's, written once for every runtime:

* the empty topic is reserved (the backplanes use it for broadcast): a command
  with it is reported and ignored, the same in one process, N workers and N nodes;
* a connection holds at most ``max_subscriptions`` topics and queue groups;
* ``client_subscribe`` / ``client_publish`` / ``client_broadcast`` and the
  ``can_*`` vetoes decide (see :mod:`goomerang_io.authorization`); a refused
  command is dropped, reported as PermissionDenied, and told to a peer that
  negotiated error replies (``forbidden``).

Each check returns True when the runtime should apply the command; it never waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from goomerang_proto import GoomerangError, Message, Status
from goomerang_proto.errors import PermissionDenied

from ..authorization import check_rule, error_message, topic_allowed, veto
from ..options import ServerOptions
from ..sender import Sender

__all__ = ["CommandRules", "Commander"]


class Commander(Protocol):
    """The connection a command came from."""

    @property
    def conn_id(self) -> int: ...

    @property
    def peer(self) -> tuple[str, int] | None: ...

    @property
    def sender(self) -> Sender: ...  # what the can_* vetoes see

    @property
    def error_replies(self) -> bool: ...

    @property
    def engine(self) -> Any: ...  # its ``status``

    def send_message(self, message: Message[Any], uuid: str) -> Any: ...


class CommandRules:
    """The rules of one server: ``options`` (``client_*``, ``max_subscriptions``), the vetoes
    (plain functions or None) and ``report`` (the server's ``report_error``).

    Raises TypeError for a ``client_*`` option or veto of the wrong type; a pattern
    list becomes a tuple in ``options``.
    """

    __slots__ = ("can_broadcast", "can_publish", "can_subscribe", "options", "report")

    def __init__(
        self,
        options: ServerOptions,
        report: Callable[[BaseException], None],
        can_subscribe: Callable[[Sender, str], bool] | None = None,
        can_publish: Callable[[Sender, str, Message[Any]], bool] | None = None,
        can_broadcast: Callable[[Sender, Message[Any]], bool] | None = None,
    ) -> None:
        for name in ("client_subscribe", "client_publish"):
            rule = check_rule(getattr(options, name), name)
            setattr(options, name, rule if isinstance(rule, bool) else tuple(rule))
        if not isinstance(options.client_broadcast, bool):
            raise TypeError("client_broadcast must be True or False")
        for name, fn in (
            ("can_subscribe", can_subscribe),
            ("can_publish", can_publish),
            ("can_broadcast", can_broadcast),
        ):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
        self.options, self.report = options, report
        self.can_subscribe, self.can_publish = can_subscribe, can_publish
        self.can_broadcast = can_broadcast

    def broadcast(self, conn: Commander, message: Message[Any]) -> bool:
        """Whether ``conn``'s BroadcastCmd goes out."""
        what = f"broadcast of {message.kind}"
        if not self.options.client_broadcast:
            return self.refuse(conn, what, "client_broadcast is off")
        return self._vetted(conn, what, veto(self.can_broadcast, conn.sender, message))

    def publish(self, conn: Commander, topic: str, message: Message[Any]) -> bool:
        """Whether ``conn``'s PublishCmd to ``topic`` goes out."""
        if not self.topic_ok("publish", topic):
            return False
        what = f"publish of {message.kind} to {topic!r}"
        if not topic_allowed(self.options.client_publish, topic):
            return self.refuse(conn, what, "topic not allowed by client_publish")
        return self._vetted(conn, what, veto(self.can_publish, conn.sender, topic, message))

    def subscribe(
        self, conn: Commander, topic: str, group: str, held: set[tuple[str, str]]
    ) -> bool:
        """Whether ``conn`` joins ``topic`` (or its queue ``group``; "" for a plain one).
        ``held``: the connection's (topic, group) pairs, counted against max_subscriptions
        and added to when it joins."""
        key, cap = (topic, group), self.options.max_subscriptions
        if key not in held and len(held) >= cap:
            self.report(
                GoomerangError(
                    f"connection {conn.conn_id} ({conn.peer}) asked for more than "
                    f"max_subscriptions={cap} subscriptions; subscribe to {topic!r} ignored"
                )
            )
            return False
        if not self.topic_ok("subscribe", topic):
            return False
        what = f"subscribe to {topic!r}" + (f" in group {group!r}" if group else "")
        if not topic_allowed(self.options.client_subscribe, topic):
            return self.refuse(conn, what, "topic not allowed by client_subscribe")
        if not self._vetted(conn, what, veto(self.can_subscribe, conn.sender, topic)):
            return False
        held.add(key)
        return True

    def unsubscribe(self, topic: str, group: str, held: set[tuple[str, str]]) -> bool:
        """Whether ``conn`` leaves ``topic`` (or its ``group``); frees its place in ``held``."""
        held.discard((topic, group))
        return self.topic_ok("unsubscribe", topic)

    def topic_ok(self, what: str, topic: str) -> bool:
        """False, reported, for the empty topic (reserved)."""
        if topic:
            return True
        self.report(
            GoomerangError(f"{what} with an empty topic from a client: ignored (topic is reserved)")
        )
        return False

    def refuse(self, conn: Commander, what: str, reason: str) -> bool:
        """Drop a refused command: the server's on_error gets PermissionDenied, a negotiated peer
        an error reply (``forbidden``). Returns False (the command is not applied)."""
        text = f"{what} refused: {reason}"
        self.report(PermissionDenied(f"connection {conn.conn_id} ({conn.peer}): {text}"))
        if conn.error_replies and conn.engine.status is Status.RUNNING:
            conn.send_message(error_message("forbidden", text), "")
        return False

    def _vetted(self, conn: Commander, what: str, refused: str | None) -> bool:
        return True if refused is None else self.refuse(conn, what, refused)
