"""A client's table of sync requests waiting for their reply, by request uuid (any runtime)."""

from __future__ import annotations

from typing import TypeVar

from goomerang_proto import TooManyPending

W = TypeVar("W")


class PendingTable(dict[str, W]):
    """The waiters (a future, an event) of the pending sync requests, by uuid.

    A plain dict, so the reply path pops from it at dict speed; bounded by
    ``max_pending_sync`` through :meth:`check_room`.
    """

    def check_room(self, limit: int) -> None:
        """Raise TooManyPending when ``limit`` (``max_pending_sync``) requests already wait."""
        if len(self) >= limit:
            raise TooManyPending(
                f"{len(self)} sync requests already pending (max_pending_sync={limit})"
            )
