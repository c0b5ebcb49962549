"""The blocking client's handler thread and its bounded queue.

The IO thread never runs user code: it puts each decoded message (and each
error to report) here, and one handler thread runs them in arrival order.
The queue is bounded by reading, not by dropping: above ``HIGH_BYTES`` payload
bytes or ``HIGH_COUNT`` items it asks the connection to stop reading, and
below a quarter of both it lets it read again. A server that floods a client
whose handlers are slow is then held back by TCP flow control (its own send
buffer fills), and the client holds at most about ``HIGH_BYTES`` of queued
messages plus one read (``READ_SIZE``) and one partial message
(``max_message_size``). Nothing is lost: every message read is handled.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

HIGH_BYTES = 1024 * 1024
"""Queued payload bytes above which reading pauses."""
HIGH_COUNT = 1024
"""Queued items above which reading pauses."""
ITEM_OVERHEAD = 64
"""Bytes counted per item on top of its payload (so tiny messages count too)."""
BATCH = 32
"""Items the handler thread takes per lock acquisition (their bytes count until all ran)."""


class Inbox:
    """A FIFO of callables run by one daemon thread; ``pause``/``resume`` gate the reader.

    ``pause`` and ``resume`` are called with the inbox's lock held, so they
    alternate strictly; they may take the connection's lock, never the reverse.
    """

    def __init__(self, name: str, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._items: deque[tuple[Callable[[], None], int]] = deque()
        self._cond = threading.Condition()
        self._bytes = 0
        self._paused = False
        self._closed = False
        self._pause = pause
        self._resume = resume
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def put(self, fn: Callable[[], None], size: int = 0) -> None:
        """Queue ``fn`` (``size``: its payload bytes); pauses reading above the high-water mark."""
        self.put_many([(fn, size)])

    def put_many(self, items: list[tuple[Callable[[], None], int]]) -> None:
        """Queue ``(fn, size)`` pairs in order, under one lock (what one read produced)."""
        with self._cond:
            queue = self._items
            total = self._bytes
            for fn, size in items:
                size += ITEM_OVERHEAD
                queue.append((fn, size))
                total += size
            self._bytes = total
            self._cond.notify()
            if not self._paused and (total > HIGH_BYTES or len(queue) > HIGH_COUNT):
                self._paused = True
                self._pause()  # under the lock: a resume can never overtake it

    def close(self) -> None:
        """Run what is queued, then end the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    @property
    def queued(self) -> tuple[int, int]:
        """(items, bytes) waiting now."""
        with self._cond:
            return len(self._items), self._bytes

    def _run(self) -> None:
        items = self._items
        while True:
            with self._cond:
                while not items and not self._closed:
                    self._cond.wait()
                if not items:
                    return
                batch = [items.popleft() for _ in range(min(len(items), BATCH))]
            done = 0
            for fn, size in batch:
                try:
                    fn()
                except Exception:  # pragma: no cover - the client's items report their own errors
                    pass
                done += size
            with self._cond:
                self._bytes -= done
                if (
                    self._paused
                    and self._bytes <= HIGH_BYTES // 4
                    and len(items) <= HIGH_COUNT // 4
                ):
                    self._paused = False
                    self._resume()


__all__ = ["HIGH_BYTES", "HIGH_COUNT", "Inbox"]
