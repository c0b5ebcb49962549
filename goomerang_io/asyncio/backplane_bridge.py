"""The server's link to its backplane: starts and closes it, hands it fan-outs and table changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .server_view import ServerView


class BackplaneBridge:
    """Owns a server's backplane (or None): other workers and nodes are reached through it.

    Every call is skipped once the server is CLOSED; what a call raises goes to
    the server's ``on_error`` hooks (it never breaks the caller).
    """

    def __init__(self, server: ServerView, backplane: Any = None) -> None:
        self.server = server
        self.backplane: Any = backplane
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self, url: str | None, deliver: Callable[[Any], None]) -> None:
        """Create the backplane from ``url`` when none was given, then start it.

        ``deliver(msg)`` gets what other workers or nodes fan out.
        """
        server = self.server
        if self.backplane is None and url is not None:
            from ..backplane import backplane_from_url

            self.backplane = backplane_from_url(url, hub_path=None)
        if self.backplane is not None:
            if server.metrics is not None:
                self.backplane.on_health_change = server.metrics.set_backplane_up
                self.backplane.on_drop = server.metrics.backplane_dropped
            await self.backplane.start(deliver, server.report_error)

    async def close(self) -> None:
        """Close the backplane (if any); an error is reported, not raised."""
        if self.backplane is not None:
            try:
                await self.backplane.close()
            except Exception as exc:
                self.server.report_error(exc)

    def call(self, method: str, *args: Any) -> None:
        """Run the coroutine ``backplane.method(*args)`` as a task (subscribe, join, ...)."""
        backplane = self.backplane
        if backplane is None or self.server.is_closed():
            return
        try:
            coro = getattr(backplane, method)(*args)
        except Exception as exc:
            self.server.report_error(exc)
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def send(self, method: str, *args: Any) -> None:
        """Hand a fan-out to the backplane: queued at once (bounded in bytes), no task."""
        backplane = self.backplane
        if backplane is None or self.server.is_closed():
            return
        try:
            getattr(backplane, method)(*args)
        except Exception as exc:
            self.server.report_error(exc)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self.server.report_error(exc)

    def routes_groups(self) -> bool:
        """Whether the backplane chooses the group member over every node (when connected)."""
        backplane = self.backplane
        return (
            backplane is not None
            and getattr(backplane, "routes_groups", False)
            and bool(backplane.healthy())
        )
