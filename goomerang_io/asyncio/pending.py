"""The asyncio client's pending-sync table: each sync request's future, by uuid."""

from __future__ import annotations

import asyncio
from typing import Any

from goomerang_proto import GoomerangError, Message, SyncTimeout

from ..pending import PendingTable


class PendingReplies(PendingTable[asyncio.Future[Message[Any]]]):
    """The futures of the sync requests waiting for their reply, by request uuid."""

    def fail(self, uid: str, exc: BaseException) -> bool:
        """Fail the request ``uid`` with ``exc`` now; False when nobody waits for it."""
        fut = self.pop(uid, None)
        if fut is None or fut.done():
            return False
        fut.set_exception(exc)
        return True

    def fail_all(self, exc: GoomerangError) -> None:
        """Fail every waiting request with ``exc`` (the connection ended)."""
        pending = list(self.values())
        self.clear()
        for fut in pending:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: the caller may have given up


def expire(fut: asyncio.Future[Any], uid: str, kind: str, timeout: float) -> None:
    """A sync request's deadline passed: its caller gets SyncTimeout."""
    if not fut.done():
        reason = f"no reply to sync request {uid} ({kind}) within {timeout} s"
        fut.set_exception(SyncTimeout(reason))
