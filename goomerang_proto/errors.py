"""One error hierarchy for the whole library, rooted in :class:`GoomerangError`.

Errors say whose fault it was: :class:`LocalProtocolError` is a misuse by the
caller (raised at once), :class:`RemoteProtocolError` is something the peer
did (never raised out of ``receive_data``; it becomes an event and, where the
WebSocket rules require it, a close with the matching code).
"""

from __future__ import annotations


class GoomerangError(Exception):
    """Base class of every error this library raises or reports."""


class NotRunning(GoomerangError):
    """The endpoint is not RUNNING: connect or start it first (or again)."""


class AlreadyRunning(GoomerangError):
    """The endpoint is already RUNNING (or starting); it cannot start twice."""


class Closing(GoomerangError):
    """The endpoint is CLOSING; no new messages are accepted."""


class Closed(GoomerangError):
    """The endpoint is CLOSED for good (servers cannot be restarted)."""


class ConnectionLost(GoomerangError):
    """The connection went away while an operation was waiting on it."""


class SyncTimeout(GoomerangError, TimeoutError):
    """No reply arrived for a sync request within its timeout."""


class TooManyPending(GoomerangError):
    """The limit of pending sync requests on this connection was reached."""


class UnknownKind(GoomerangError):
    """A frame named a message kind that is not registered on this endpoint.

    ``uuid`` is the sync reply's correlation id when the frame was one (so the
    waiting ``send_sync`` fails at once), else "".
    """

    def __init__(self, kind: str, uuid: str = "") -> None:
        super().__init__(
            f"unknown message kind {kind!r}: register it with handle() or register_message()"
        )
        self.kind = kind
        self.uuid = uuid


class MessageTooLarge(GoomerangError):
    """A message is larger than the configured max_message_size."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds max_message_size={limit}")
        self.size = size
        self.limit = limit


class MalformedFrame(GoomerangError):
    """A binary WebSocket message did not decode as a goomerang envelope or payload."""


class UnexpectedText(GoomerangError):
    """A text WebSocket message arrived; goomerang only speaks binary messages."""


class UnexpectedReply(GoomerangError):
    """A sync reply arrived for a request nobody is waiting for (late or unknown uuid)."""


class RouterFrozen(GoomerangError):
    """Handlers and middlewares cannot be registered once the endpoint started."""


class IllegalTransition(GoomerangError):
    """A status change that the lifecycle does not allow."""


class ProtocolError(GoomerangError):
    """A WebSocket or HTTP protocol rule was broken."""


class LocalProtocolError(ProtocolError):
    """The caller broke a protocol rule (e.g. sending after close)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke a protocol rule; carries the close code we answered with."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class HandshakeError(ProtocolError):
    """The HTTP upgrade failed (bad request, rejected, or bad response)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HandlerError(GoomerangError):
    """A user handler raised; wraps the original exception as ``__cause__``."""


class TLSError(HandshakeError):
    """The TLS handshake failed; the message says what failed (certificate, hostname, ...)."""


class PermissionDenied(GoomerangError):
    """The server's authorization refused a client's subscribe, publish or broadcast."""


class RemoteError(GoomerangError):
    """The server answered a sync request with an error reply instead of a result.

    ``code`` is ``"no-handler"`` (no handler for the request's kind) or
    ``"handler-error"`` (the handler raised). Only sent to peers that
    negotiated error replies in the upgrade (our clients do; the Go client
    never gets one).
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class OutboxFull(GoomerangError):
    """A send made while reconnecting found the client's outbox full (``outbox_size``)."""
