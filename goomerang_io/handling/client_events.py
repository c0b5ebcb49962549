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
  status (1005), as the Go client (RFC 6455 section 7.4.1);
* the statuses follow Go's sequences: RUNNING once the upgrade completed (so a
  Close read right after it finds the client RUNNING), then RUNNING -> CLOSING ->
  CLOSED whoever closes, with ``on_close`` once CLOSED.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

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
from goomerang_proto import events as ev
from goomerang_proto.frames import CLEAN_CLOSE_CODES

from ..authorization import ERROR_REPLIES, error_of
from ..sender import Sender
from ..validate import check_close_code
from .handlers import Job
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


class Owner(Protocol):
    """The client (an :class:`~goomerang_io.endpoint.Endpoint`)."""

    server: str  # its address, for the messages
    options: Any
    hooks: Any
    router: Router

    @property
    def status(self) -> Status: ...

    def _move(self, status: Status) -> None: ...

    def report_error(self, exc: BaseException) -> None: ...


class ClientEvents:
    """One client's rules and statuses; ``pending``: its sync requests (max_pending_sync).
    ``error_replies`` is set when the upgrade completes; ``closed_by_user`` by
    :meth:`begin_close` (reset by :meth:`handle` on the next upgrade)."""

    __slots__ = ("client", "closed_by_user", "error_replies", "pending", "report", "router")

    def __init__(self, client: Owner) -> None:
        self.client, self.router, self.report = client, client.router, client.report_error
        self.pending = PendingRequests(client.options.max_pending_sync)
        self.error_replies = self.closed_by_user = False

    def handle(self, conn: Any, event: ev.Event) -> Job | None:
        """Apply one event of the client's engine (``conn`` is the runtime's connection, the
        handlers' sender writes to it); a message gives the job of its handler."""
        client = self.client
        if isinstance(event, ev.MessageReceived | ev.SyncReplyReceived):
            chain = self.handler_for(event.message)
            if chain is not None:
                return chain, Sender(conn), event.message
        elif isinstance(event, ev.ErrorOccurred):
            self.error(event.error)
        elif isinstance(event, ev.Connected):
            self.error_replies = ERROR_REPLIES in conn.engine.extensions
            self.closed_by_user = False
            client._move(Status.RUNNING)
            client.hooks.run("on_configuration", client.options)
        elif isinstance(event, ev.ConnectionClosed):
            if client.status is Status.RUNNING and not self.closed_by_user:
                self.lost(event.code, event.error)  # the server closed, or vanished
                client._move(Status.CLOSING)
                self._closed()
        return None

    def begin_close(self, code: int) -> None:
        """The user's close(``code``): RUNNING -> CLOSING; NotRunning otherwise (nothing to
        close), TypeError/ValueError for a code a Close frame cannot carry."""
        check_close_code(code)
        status = self.client.status
        if status is not Status.RUNNING:
            raise NotRunning(f"client is {status.name}: nothing to close")
        self.closed_by_user = True
        self.client._move(Status.CLOSING)

    def end_close(self) -> None:
        """The user's close is over (answered or timed out): waiting requests fail; CLOSED."""
        self.pending.fail_all(ConnectionLost("client closed while the request was pending"))
        self._closed()

    def _closed(self) -> None:
        if self.client.status is Status.CLOSING:
            self.client._move(Status.CLOSED)
            self.client.hooks.run("on_close")

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
        server = self.client.server
        self.pending.fail_all(ConnectionLost(f"connection to {server} lost"))
        if error is not None:
            self.report(error)
        elif code not in CLEAN_CLOSE_CODES:
            self.report(ConnectionLost(f"connection to {server} lost (code {code})"))
