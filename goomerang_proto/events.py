"""Typed events returned by a connection's ``events()``: frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import GoomerangError
from .message import Message


class Event:
    """Base class of every connection event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class HandshakeRequest(Event):
    """A WebSocket upgrade request reached the server (only with ``auto_accept=False``).

    Answer it with ``accept()`` or ``reject(status)``.
    """

    path: str
    query: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Connected(Event):
    """The WebSocket handshake completed; messages can flow."""

    path: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class HandshakeRejected(Event):
    """Client side: the server answered the upgrade with something else than 101."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class HttpRequest(Event):
    """A plain HTTP request on a path that is not the WebSocket endpoint.

    The caller answers with ``send_http_response`` (the default is a 404).
    """

    method: str
    target: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class MessageReceived(Event):
    """A plain (asynchronous) goomerang message."""

    message: Message[Any]


@dataclass(frozen=True, slots=True)
class SyncRequestReceived(Event):
    """Server side: a sync request; reply with ``send(reply, uuid=message.uuid, is_sync=True)``."""

    message: Message[Any]


@dataclass(frozen=True, slots=True)
class SyncReplyReceived(Event):
    """Client side: the reply to one of our sync requests (``message.uuid`` says which)."""

    message: Message[Any]


@dataclass(frozen=True, slots=True)
class BroadcastRequested(Event):
    """Server side: the client asked to broadcast ``message`` to every client."""

    message: Message[Any]


@dataclass(frozen=True, slots=True)
class PublishRequested(Event):
    """Server side: the client asked to publish ``message`` to ``topic``."""

    topic: str
    message: Message[Any]


@dataclass(frozen=True, slots=True)
class SubscribeRequested(Event):
    """Server side: the client subscribes to ``topic`` (joins queue ``group`` when set)."""

    topic: str
    group: str = ""


@dataclass(frozen=True, slots=True)
class UnsubscribeRequested(Event):
    """Server side: the client unsubscribes from ``topic`` (leaves queue ``group`` when set)."""

    topic: str
    group: str = ""


@dataclass(frozen=True, slots=True)
class RawMessage(Event):
    """Raw mode only: a complete WebSocket message (opcode 1 text or 2 binary)."""

    opcode: int
    data: bytes


@dataclass(frozen=True, slots=True)
class PingReceived(Event):
    """A ping arrived (the engine already queued the pong)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class PongReceived(Event):
    """A pong arrived."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class ErrorOccurred(Event):
    """Something the peer sent could not be used; the connection stays open.

    Examples: an unknown kind, a malformed envelope, a text message, a late
    sync reply. Protocol violations that end the connection come as
    ConnectionClosed with the error attached.
    """

    error: GoomerangError


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The WebSocket connection is over (status CLOSED).

    ``code`` is the peer's close code (1005 when its close had none, 1006 when
    the TCP connection ended without a close), or the code we failed the
    connection with. ``by_peer`` tells who started the closing.
    """

    code: int
    reason: str = ""
    by_peer: bool = True
    error: GoomerangError | None = field(default=None)
