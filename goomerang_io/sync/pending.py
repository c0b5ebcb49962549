"""The blocking client's pending-sync table: a waiter per sync request, by uuid."""

from __future__ import annotations

import threading
from typing import Any

from goomerang_proto import GoomerangError, Message

from ..pending import PendingTable


class Waiter:
    """One sync request waiting for its reply: ``done`` is set with ``reply`` or ``error``."""

    __slots__ = ("done", "error", "reply")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: Message[Any] | None = None
        self.error: GoomerangError | None = None

    def resolve(self, reply: Message[Any]) -> None:
        """The reply arrived: wake the caller with it."""
        self.reply = reply
        self.done.set()

    def fail(self, error: GoomerangError) -> None:
        """The request failed (error reply, unknown kind, connection lost): wake the caller."""
        self.error = error
        self.done.set()


class PendingWaiters(PendingTable[Waiter]):
    """The waiters of the pending sync requests (guarded by the client's lock)."""

    def take_all(self) -> list[Waiter]:
        """Remove and return every waiter (to fail them outside the lock)."""
        waiters = list(self.values())
        self.clear()
        return waiters
