"""Event loop helpers: uvloop when installed, plain asyncio otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_uvloop: Any
try:  # pragma: no cover - depends on the platform
    import uvloop as _uvloop
except ImportError:  # pragma: no cover
    _uvloop = None


def has_uvloop() -> bool:
    """True when uvloop is importable."""
    return _uvloop is not None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A fresh uvloop loop when available, else a default asyncio loop."""
    if _uvloop is not None:
        loop: asyncio.AbstractEventLoop = _uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh (uv)loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)
