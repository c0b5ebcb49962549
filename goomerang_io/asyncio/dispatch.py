"""Runs handlers for one connection with the max_concurrency rule.

* ``max_concurrency <= 1``: handlers run one after another in arrival order
  (async handlers are awaited before the next message starts).
* otherwise: plain-function handlers run inline as messages arrive; async
  handlers run as tasks, at most ``max_concurrency`` at once per connection;
  the rest wait in arrival order. ``backlog()`` lets the connection pause
  reading when too much waits.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from goomerang_proto import HandlerError, Message
from goomerang_proto.message import held_size

from ..awaitables import Ready as _Ready
from ..handling.handlers import ending_send

ErrorFn = Callable[[BaseException], None]


Ready: Final = _Ready  # Final: the compiled build holds it in a C static


class HandlerRunner:
    """Per-connection handler scheduler."""

    __slots__ = (
        "_hooked",
        "_idle",
        "_idle_at",
        "_inflight",
        "_on_end",
        "_on_start",
        "_queue",
        "_queued_bytes",
        "_report",
        "_tasks",
        "max_concurrency",
        "on_progress",
    )

    def __init__(
        self,
        max_concurrency: int,
        report: ErrorFn,
        on_start: Callable[[], None] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self._report = report
        # (chain, sender, message, its held_size): the size is counted once, in and out
        self._queue: deque[tuple[Callable[..., Any], Any, Message[Any], int]] = deque()
        self._queued_bytes = 0
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: asyncio.Event | None = None
        self._idle_at = 0  # handlers still running when wait_idle's caller is one of them
        self._on_start = on_start
        self._on_end = on_end
        self._hooked = on_start is not None or on_end is not None
        self.on_progress: Callable[[], None] | None = None

    @property
    def on_start(self) -> Callable[[], None] | None:
        """Called before each handler starts (the server's worker accounting), or None."""
        return self._on_start

    @on_start.setter
    def on_start(self, fn: Callable[[], None] | None) -> None:
        self._on_start = fn
        self._hooked = fn is not None or self._on_end is not None

    @property
    def on_end(self) -> Callable[[], None] | None:
        """Called after each handler ended, or None."""
        return self._on_end

    @on_end.setter
    def on_end(self, fn: Callable[[], None] | None) -> None:
        self._on_end = fn
        self._hooked = self._on_start is not None or fn is not None

    def backlog(self) -> int:
        """Messages waiting for a handler slot."""
        return len(self._queue)

    def backlog_bytes(self) -> int:
        """Payload bytes of the messages waiting for a handler slot."""
        return self._queued_bytes

    def allows_reading(self, max_queue: int, max_bytes: int, paused: bool) -> bool:
        """Whether a connection may read on, given what waits for a handler slot.

        Reading pauses past ``max_queue`` messages or ``max_bytes`` payload bytes
        and resumes once both are back under half, so a peer that sends faster
        than the handlers run is held back by its own TCP window. One call per
        read: the connection asks on every flush.
        """
        if paused:
            return len(self._queue) <= max_queue // 2 and self._queued_bytes <= max_bytes // 2
        return len(self._queue) <= max_queue and self._queued_bytes <= max_bytes

    def running(self) -> int:
        """Async handlers currently running."""
        return self._inflight

    def submit(self, chain: Callable[..., Any], sender: Any, message: Message[Any]) -> None:
        """Run ``chain(sender, message)`` now, or queue it when the slots are full."""
        if self._inflight >= self.max_concurrency or (self._queue and self.max_concurrency == 1):
            size = held_size(message)
            self._queue.append((chain, sender, message, size))
            self._queued_bytes += size
            return
        if self._hooked:
            self._start(chain, sender, message)
            return
        # _start without hooks, inlined: a plain-function handler costs one call
        try:
            result = chain(sender, message)
        except Exception as exc:
            self._failed(exc, message)
            return
        if result is None or type(result) is Ready or not inspect.isawaitable(result):
            return
        self._track(result, message)

    def _start(self, chain: Callable[..., Any], sender: Any, message: Message[Any]) -> None:
        on_start = self.on_start
        if on_start is not None:
            on_start()
        try:
            result = chain(sender, message)
        except Exception as exc:
            self._failed(exc, message)
            self._ended()
            return
        if result is None or type(result) is Ready or not inspect.isawaitable(result):
            if self.on_end is not None:
                self.on_end()
            return
        self._track(result, message)

    def _track(self, result: Any, message: Message[Any]) -> None:
        """Run an async handler's awaitable as a task that holds a slot."""
        self._inflight += 1
        task = asyncio.ensure_future(self._await(result, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await(self, awaitable: Any, message: Message[Any]) -> None:
        try:
            await awaitable
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc, message)
        finally:
            self._inflight -= 1
            self._ended()
            self._next()
            if self.on_progress is not None:
                self.on_progress()

    def _ended(self) -> None:
        on_end = self.on_end
        if on_end is not None:
            on_end()

    def _next(self) -> None:
        queue = self._queue
        while queue and self._inflight < self.max_concurrency:
            chain, sender, message, size = queue.popleft()
            self._queued_bytes -= size
            self._start(chain, sender, message)
        if not queue and self._inflight <= self._idle_at and self._idle is not None:
            self._idle.set()

    def _failed(self, exc: BaseException, message: Message[Any]) -> None:
        if ending_send(exc):
            return
        err = HandlerError(f"handler for {message.kind} raised {type(exc).__name__}: {exc}")
        err.__cause__ = exc
        self._report(err)

    async def wait_idle(
        self, timeout: float | None, spare: asyncio.Task[Any] | None = None
    ) -> bool:
        """Wait until no handler runs and none waits; False on timeout (seconds).

        ``spare``: the task that asks (``asyncio.current_task()`` of a ``close()``
        or ``shutdown()``); when it is one of this runner's handlers it is not
        waited for, since it cannot end before the wait does.
        """
        own = 1 if spare is not None and spare in self._tasks else 0
        if self._inflight <= own and not self._queue:
            return True
        self._idle = asyncio.Event()
        self._idle_at = own
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._idle_at = 0

    def cancel(self, spare: asyncio.Task[Any] | None = None) -> None:
        """Drop queued messages and cancel running handler tasks, except ``spare``."""
        self._queue.clear()
        self._queued_bytes = 0
        for task in list(self._tasks):
            if task is not spare:
                task.cancel()

    async def cancel_and_wait(self, timeout: float, spare: asyncio.Task[Any] | None = None) -> None:
        """Cancel as ``cancel`` does, then wait (``timeout`` s at most) for the tasks to end."""
        self.cancel(spare)
        tasks = [task for task in self._tasks if task is not spare]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
