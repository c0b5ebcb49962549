"""A server's messages and sync requests, matched to their handler chains.

The rules are the asyncio server's (``ServerProtocol``): a message of a kind
with no handler is reported and dropped; a sync request without one, or whose
handler raises, is answered with an error reply when the peer negotiated
``error-replies`` (see :mod:`goomerang_io.authorization`; the Go peer gets
nothing, as from the Go server). A handler's own failure text never reaches
the peer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from goomerang_proto import GoomerangError, Message, Router, Status
from goomerang_proto.errors import UnknownKind

from ..authorization import error_message
from .handlers import on_failure

__all__ = ["Peer", "Requests"]


class Peer(Protocol):
    """The connection a message came from (the runtime's server-side connection)."""

    @property
    def error_replies(self) -> bool: ...

    @property
    def engine(self) -> Any: ...  # its ``status``

    def send_message(self, message: Message[Any], uuid: str) -> Any: ...


class Requests:
    """Which chain runs a received message; ``report`` is the server's ``report_error``."""

    __slots__ = ("_resolve", "report")

    def __init__(self, router: Router, report: Callable[[BaseException], None]) -> None:
        self._resolve = router.resolver()  # frozen already: the chain table's own ``get``
        self.report = report

    def handler_for(self, message: Message[Any], peer: Peer) -> Callable[..., Any] | None:
        """The chain to run for ``message`` from ``peer``, or None (no handler: reported, and a
        negotiated sync request is answered ``no-handler``)."""
        chain = self._resolve(message.kind)
        if chain is None:
            what = "sync request kind" if message.is_sync else "kind"
            tail = "" if message.is_sync else " (message dropped)"
            self.report(GoomerangError(f"no handler for {what} {message.kind!r}{tail}"))
            if message.is_sync:
                self._reply(peer, message.uuid, "no-handler", f"no handler for {message.kind}")
            return None
        if message.is_sync and peer.error_replies:
            return on_failure(chain, lambda m: self._failed(peer, m))
        return chain

    def error(self, error: GoomerangError, peer: Peer) -> None:
        """An ErrorOccurred of ``peer``'s engine: reported; a sync request of a kind not even
        registered here is answered ``no-handler`` (its caller learns now, not at its timeout)."""
        self.report(error)
        if isinstance(error, UnknownKind) and error.uuid:
            self._reply(peer, error.uuid, "no-handler", f"no handler for {error.kind}")

    def _failed(self, peer: Peer, message: Message[Any]) -> None:
        text = f"the handler for {message.kind} failed"  # no internals leak to the peer
        self._reply(peer, message.uuid, "handler-error", text)

    @staticmethod
    def _reply(peer: Peer, uuid: str, code: str, text: str) -> None:
        if peer.error_replies and peer.engine.status is Status.RUNNING:
            try:
                peer.send_message(error_message(code, text), uuid)
            except GoomerangError:  # the connection ends meanwhile: nobody to tell
                pass
