"""Wait for endpoint state through its hooks: every hook call re-checks a condition.

Server tables and statuses have no event of their own, but every change to
them runs a hook (``on_connect``, ``on_disconnect``, ``on_subscribe``,
``on_status_change``, ``on_error``...). :class:`HookWait` registers itself
on the hooks a test names and wakes its waiters whenever one fires, from the
test's own loop or from another thread (a threaded server, the blocking
client). A waiter re-checks its condition on each wake-up, with a timeout;
nothing polls on a timer. Register it after the test's own hooks for the
same name: hooks run in registration order, so the state a condition reads
is up to date when the wake-up comes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

WAIT = 10.0


class HookWait:
    """Wakes waiters each time a watched hook runs."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._async: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def watch(self, endpoint: Any, *hooks: str) -> HookWait:
        """Register on ``hooks`` of ``endpoint`` (a Server, Client or blocking Client)."""
        for name in hooks:
            endpoint.add_hook(name, self.poke)
        return self

    def poke(self, *_args: Any) -> None:
        """A hook ran: wake every waiter (safe from any thread)."""
        with self._cond:
            self._cond.notify_all()
            waiters = list(self._async)
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, event in waiters:
            if loop is running:
                event.set()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    async def until(self, pred: Callable[[], bool], timeout: float = WAIT) -> None:
        """Return once ``pred()`` holds, re-checked after each hook call; TimeoutError if not."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._cond:
            self._async.append(entry)
        try:
            async with asyncio.timeout(timeout):
                while not pred():
                    await entry[1].wait()
                    entry[1].clear()
        finally:
            with self._cond:
                self._async.remove(entry)

    def wait(self, pred: Callable[[], bool], timeout: float = WAIT) -> None:
        """Blocking ``until``, for tests whose endpoints run on other threads."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("condition not met in time")
                self._cond.wait(left)
