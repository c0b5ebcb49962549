"""A client's engine events, turned into handler runs, settled requests and reported errors.

The rules are the asyncio client's, written once for every client runtime:

* a sync reply settles its request (:mod:`.pending`); one nobody waits for is
  reported as UnexpectedReply and dropped;
* with ``error-replies`` negotiated, an error message from the server fails its
  request (RemoteError, PermissionDenied) or, without one, is reported;
* a reply of a kind not registered here fails its request at once (UnknownKind);
* a message of a kind with no handler is reported;
* the end of the connection fails every waiting request with ConnectionLost and
  is reported unless the server closed cleanly: 1000, 1001, or a Close without
  status (1005), as the Go client (RFC 6455 section 7.4.1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.wrappers_pb2 import StringValue

from goomerang_proto import (
    BaseConnection,
    Closing,
    ConnectionLost,
    GoomerangError,
    Message,
    NotRunning,
    Router,
    Status,
    UnknownKind,
)
from goomerang_proto.frames import CLEAN_CLOSE_CODES

from ..authorization import ERROR_REPLIES, error_of
from .pending import PendingRequests

__all__ = ["ClientEvents", "prepare_router", "sendable"]

E = TypeVar("E", bound=BaseConnection)


def prepare_router(router: Router) -> None:
    """Freeze a client's router, with the error replies' payload type registered first."""
    if not router.frozen:
        router.register_message(StringValue)
    router.freeze()


def sendable(status: Status, engine: E | None) -> E:
    """The engine a command goes to; Closing or NotRunning when the client cannot send."""
    if status is Status.RUNNING and engine is not None and engine.status is Status.RUNNING:
        return engine
    if status is Status.CLOSING:
        raise Closing("client is closing: no new messages are accepted")
    if status is Status.RUNNING:
        raise NotRunning("the connection is closing or lost: no new messages are accepted")
    raise NotRunning(f"client is {status.name}: connect() first")


class ClientEvents:
    """One client's rules; ``report`` is its ``report_error``, ``server`` its address (for
    the messages). ``error_replies`` is set by :meth:`connected`."""

    __slots__ = ("error_replies", "pending", "report", "router", "server")

    def __init__(
        self,
        router: Router,
        pending: PendingRequests,
        report: Callable[[BaseException], None],
        server: str,
    ) -> None:
        self.router, self.pending, self.report, self.server = router, pending, report, server
        self.error_replies = False

    def connected(self, extensions: frozenset[str]) -> None:
        """The upgrade completed with ``extensions`` accepted by the server."""
        self.error_replies = ERROR_REPLIES in extensions

    def handler_for(self, message: Message[Any]) -> Callable[..., Any] | None:
        """The chain to run for a received message; None when it was a reply or an error reply
        (settled or reported here) or has no handler (reported)."""
        if self.error_replies and message.headers:
            error = error_of(message)
            if error is not None:
                if not (message.uuid and self.pending.fail(message.uuid, error)):
                    self.report(error)
                return None
        if message.is_sync:
            late = self.pending.reply(message)
            if late is not None:
                self.report(late)
            return None
        chain = self.router.resolve(message.kind)
        if chain is None:
            self.report(GoomerangError(f"no handler for kind {message.kind!r}"))
        return chain

    def error(self, error: GoomerangError) -> None:
        """An ErrorOccurred: reported; a reply of an unknown kind fails its request now."""
        if isinstance(error, UnknownKind) and error.uuid:
            self.pending.fail(error.uuid, error)
        self.report(error)

    def lost(self, code: int | None, error: GoomerangError | None) -> None:
        """The connection ended without the user's close (ConnectionClosed ``code`` and
        ``error``): waiting requests fail; the end is reported once unless it was clean."""
        self.pending.fail_all(ConnectionLost(f"connection to {self.server} lost"))
        if error is not None:
            self.report(error)
        elif code not in CLEAN_CLOSE_CODES:
            self.report(ConnectionLost(f"connection to {self.server} lost (code {code})"))
