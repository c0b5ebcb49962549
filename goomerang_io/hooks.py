"""Hook lists: each hook can be registered many times and runs in registration order.

A hook that raises is reported through the ``on_error`` hooks (and logged
when an ``on_error`` hook itself raises); it never breaks the caller.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("goomerang")

HookFn = Callable[..., Any]

SERVER_HOOKS = (
    "on_status_change",
    "on_close",
    "on_error",
    "on_configuration",
    "on_worker_start",
    "on_worker_end",
    "on_broadcast",
    "on_client_broadcast",
    "on_subscribe",
    "on_unsubscribe",
    "on_group_join",
    "on_group_leave",
    "on_publish",
    "on_connect",
    "on_disconnect",
)
CLIENT_HOOKS = (
    "on_status_change",
    "on_close",
    "on_error",
    "on_configuration",
    "on_worker_start",
    "on_worker_end",
    "on_reconnect_attempt",
)


class Hooks:
    """Named lists of callables. ``run(name, *args)`` calls each; errors are reported."""

    def __init__(self, names: Iterable[str]) -> None:
        self._hooks: dict[str, list[HookFn]] = {name: [] for name in names}

    def add(self, name: str, fn: HookFn | Iterable[HookFn] | None) -> None:
        """Register ``fn`` (or each of an iterable of callables) under ``name``."""
        if fn is None:
            return
        if name not in self._hooks:
            raise ValueError(f"unknown hook {name!r}; known: {', '.join(self._hooks)}")
        fns = [fn] if callable(fn) else list(fn)
        for f in fns:
            if not callable(f):
                raise TypeError(f"hook {name} is not callable: {f!r}")
            self._hooks[name].append(f)

    def has(self, name: str) -> bool:
        """True when at least one hook is registered under ``name``."""
        return bool(self._hooks.get(name))

    def run(self, name: str, *args: Any) -> None:
        """Call every hook registered under ``name``; awaitables are scheduled, not awaited."""
        for fn in self._hooks[name]:
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    _schedule(result)
            except Exception as exc:  # a hook never breaks the loop
                if name == "on_error":
                    log.exception("on_error hook %r raised", fn)
                else:
                    self.error(exc)

    def error(self, exc: BaseException) -> None:
        """Report ``exc`` through the on_error hooks (logged when there are none)."""
        if not self._hooks["on_error"]:
            log.warning("goomerang error: %s", exc)
            return
        self.run("on_error", exc)


_pending: set[Any] = set()


def _schedule(awaitable: Any) -> None:
    import asyncio

    try:
        task = asyncio.ensure_future(awaitable)
        _pending.add(task)
        task.add_done_callback(_pending.discard)
    except RuntimeError:  # no running loop: nothing to schedule on
        log.warning("async hook could not be scheduled: no running event loop")
