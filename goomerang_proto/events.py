"""Typed events returned by a connection's ``events()``: small ``__slots__`` classes.

Plain classes rather than frozen dataclasses: the engine makes one per
message on the hot path, and a frozen dataclass's ``__init__`` (one
``object.__setattr__`` per field) costs several times more. Treat them as
read-only; they compare equal by type and fields.
"""

from __future__ import annotations

from typing import Any

from .errors import GoomerangError
from .message import Message


class Event:
    """Base class of every connection event."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Event)
            and type(other) is type(self)
            and other._values() == self._values()
        )

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class HandshakeRequest(Event):
    """A WebSocket upgrade request reached the server (only with ``auto_accept=False``).

    Answer it with ``accept()`` or ``reject(status)``.
    """

    __slots__ = ("headers", "path", "query")

    def __init__(self, path: str, query: str, headers: tuple[tuple[str, str], ...]) -> None:
        self.path = path
        self.query = query
        self.headers = headers


class Connected(Event):
    """The WebSocket handshake completed; messages can flow."""

    __slots__ = ("headers", "path")

    def __init__(self, path: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.path = path
        self.headers = headers


class HandshakeRejected(Event):
    """Client side: the server answered the upgrade with something else than 101."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(
        self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = (), body: bytes = b""
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class HttpRequest(Event):
    """A plain HTTP request on a path that is not the WebSocket endpoint.

    The caller answers with ``send_http_response`` (the default is a 404).
    """

    __slots__ = ("body", "headers", "method", "path", "query", "target")

    def __init__(
        self,
        method: str,
        target: str,
        path: str,
        query: str,
        headers: tuple[tuple[str, str], ...],
        body: bytes = b"",
    ) -> None:
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body


class MessageReceived(Event):
    """A plain (asynchronous) goomerang message."""

    __slots__ = ("message",)

    def __init__(self, message: Message[Any]) -> None:
        self.message = message


class SyncRequestReceived(Event):
    """Server side: a sync request; reply with ``send(reply, uuid=message.uuid, is_sync=True)``."""

    __slots__ = ("message",)

    def __init__(self, message: Message[Any]) -> None:
        self.message = message


class SyncReplyReceived(Event):
    """Client side: the reply to one of our sync requests (``message.uuid`` says which)."""

    __slots__ = ("message",)

    def __init__(self, message: Message[Any]) -> None:
        self.message = message


class BroadcastRequested(Event):
    """Server side: the client asked to broadcast ``message`` to every client."""

    __slots__ = ("message",)

    def __init__(self, message: Message[Any]) -> None:
        self.message = message


class PublishRequested(Event):
    """Server side: the client asked to publish ``message`` to ``topic``."""

    __slots__ = ("message", "topic")

    def __init__(self, topic: str, message: Message[Any]) -> None:
        self.topic = topic
        self.message = message


class SubscribeRequested(Event):
    """Server side: the client subscribes to ``topic`` (joins queue ``group`` when set)."""

    __slots__ = ("group", "topic")

    def __init__(self, topic: str, group: str = "") -> None:
        self.topic = topic
        self.group = group


class UnsubscribeRequested(Event):
    """Server side: the client unsubscribes from ``topic`` (leaves queue ``group`` when set)."""

    __slots__ = ("group", "topic")

    def __init__(self, topic: str, group: str = "") -> None:
        self.topic = topic
        self.group = group


class RawMessage(Event):
    """Raw mode only: a complete WebSocket message (opcode 1 text or 2 binary)."""

    __slots__ = ("data", "opcode")

    def __init__(self, opcode: int, data: bytes) -> None:
        self.opcode = opcode
        self.data = data


class PingReceived(Event):
    """A ping arrived (the engine already queued the pong)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class PongReceived(Event):
    """A pong arrived."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class ErrorOccurred(Event):
    """Something the peer sent could not be used; the connection stays open.

    Examples: an unknown kind, a malformed envelope, a text message, a late
    sync reply. Protocol violations that end the connection come as
    ConnectionClosed with the error attached.
    """

    __slots__ = ("error",)

    def __init__(self, error: GoomerangError) -> None:
        self.error = error


class ConnectionClosed(Event):
    """The WebSocket connection is over (status CLOSED).

    ``code`` is the peer's close code (1005 when its close had none, 1006 when
    the TCP connection ended without a close), or the code we failed the
    connection with. ``by_peer`` tells who started the closing.
    """

    __slots__ = ("by_peer", "code", "error", "reason")

    def __init__(
        self, code: int, reason: str = "", by_peer: bool = True, error: GoomerangError | None = None
    ) -> None:
        self.code = code
        self.reason = reason
        self.by_peer = by_peer
        self.error = error
