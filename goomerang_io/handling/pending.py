"""Sync requests waiting for their replies: one table for every client runtime.

A request is opened with the runtime's wake-up (``trio.Event.set``,
``threading.Event.set``, a callback resolving an ``asyncio`` future); a reply,
an error reply or the connection's end settles it once and wakes the caller,
which then reads :meth:`Waiter.result`. The table never waits itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from goomerang_proto import GoomerangError, Message, SyncTimeout, TooManyPending, UnexpectedReply

__all__ = ["PendingRequests", "Waiter"]


class Waiter:
    """One request's outcome: ``reply`` or ``error``, set once, then ``wake()`` is called."""

    __slots__ = ("error", "reply", "wake")

    def __init__(self, wake: Callable[[], Any]) -> None:
        self.wake = wake
        self.reply: Message[Any] | None = None
        self.error: GoomerangError | None = None

    def settle(self, reply: Message[Any] | None, error: GoomerangError | None = None) -> bool:
        """Record the outcome and wake the caller; False (nothing changed) when settled already."""
        if self.reply is not None or self.error is not None:
            return False
        self.reply, self.error = reply, error
        self.wake()
        return True

    def result(self, timed_out: str) -> Message[Any]:
        """The reply; raises the error it was settled with, or SyncTimeout(``timed_out``)
        when nothing settled it (the caller's deadline passed)."""
        if self.error is not None:
            raise self.error
        if self.reply is None:
            raise SyncTimeout(timed_out)
        return self.reply


class PendingRequests:
    """uuid -> :class:`Waiter`, at most ``limit`` at once (``max_pending_sync``)."""

    __slots__ = ("_waiters", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._waiters: dict[str, Waiter] = {}

    def __len__(self) -> int:
        return len(self._waiters)

    def open(self, uuid: str, wake: Callable[[], Any]) -> Waiter:
        """Wait for the reply to ``uuid``; TooManyPending when ``limit`` requests wait already
        (then nothing is opened: the caller sends nothing)."""
        if len(self._waiters) >= self.limit:
            count = len(self._waiters)
            raise TooManyPending(
                f"{count} sync requests already pending (max_pending_sync={self.limit})"
            )
        waiter = self._waiters[uuid] = Waiter(wake)
        return waiter

    def discard(self, uuid: str) -> None:
        """The caller stopped waiting (reply, error or its own deadline)."""
        self._waiters.pop(uuid, None)

    def reply(self, message: Message[Any]) -> UnexpectedReply | None:
        """Settle the request ``message`` answers; else the UnexpectedReply to report (a reply
        after its caller gave up, or to a request never made: dropped, as the Go client does)."""
        waiter = self._waiters.pop(message.uuid, None)
        if waiter is not None and waiter.settle(message):
            return None
        return UnexpectedReply(
            f"sync reply {message.uuid} ({message.kind}) arrived after its caller gave up, "
            "or was never asked for; dropped"
        )

    def fail(self, uuid: str, error: GoomerangError) -> bool:
        """Fail the request ``uuid`` with ``error`` now; False when none waits for it."""
        waiter = self._waiters.pop(uuid, None)
        return waiter is not None and waiter.settle(None, error)

    def fail_all(self, error: GoomerangError) -> None:
        """The connection ended: every waiting request fails with ``error``."""
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            waiter.settle(None, error)
