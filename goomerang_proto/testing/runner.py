"""Running a handler's awaitable without an event loop (the pair's default runner)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Runner = Callable[[Awaitable[Any]], Any]
"""Takes the awaitable a handler returned and runs it to completion (e.g. ``asyncio.run``)."""


class Done(Generic[T]):
    """An awaitable whose value is known: what ``sender.send`` returns (await it or not)."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        return self.value
        yield  # pragma: no cover - makes this a generator


def drive(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion without an event loop; return its result.

    Works for coroutines that await other coroutines, ``sender.send`` and
    ``asyncio.sleep(0)``-style bare yields. RuntimeError when it waits on a
    future (real IO, timers): give the Pair a real ``runner`` for those.
    """
    hint = "build the Pair with runner=asyncio.run (or another runner)"
    it = awaitable.__await__()
    while True:
        try:
            yielded = it.send(None)
        except StopIteration as stop:
            result: T = stop.value
            return result
        except RuntimeError as exc:
            if "event loop" in str(exc):  # e.g. asyncio.sleep(t > 0) outside a loop
                raise RuntimeError(f"the handler needs an event loop ({exc}): {hint}") from exc
            raise
        if yielded is not None:
            it.close()
            raise RuntimeError(
                f"the handler awaited {yielded!r}, which needs an event loop: {hint}"
            )


__all__ = ["Done", "Runner", "drive"]
