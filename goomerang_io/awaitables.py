"""Tiny awaitables that let ``send`` write eagerly and only wait when it must."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Ready(Generic[T]):
    """An awaitable whose value is already known; awaiting it never suspends.

    Unlike a coroutine, leaving it un-awaited (a plain-function handler
    calling ``sender.send(...)``) is harmless: the write already happened.
    """

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        return self.value
        yield  # pragma: no cover - makes this a generator


READY_SIZES: list[Ready[int]] = [Ready(size) for size in range(1024)]
"""``Ready(size)`` for the payload sizes under 1 KiB, made once (a reply's send
returns one of these instead of a new object; they are never mutated)."""


class AfterDrain(Generic[T]):
    """Awaits a drain future (the write buffer went below its low-water mark), then returns."""

    __slots__ = ("fut", "value")

    def __init__(self, fut: asyncio.Future[None], value: T) -> None:
        self.fut = fut
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        yield from asyncio.shield(self.fut).__await__()
        return self.value


class AfterWait(Generic[T]):
    """Awaits ``wait()`` (any loop's: ``trio.Event.wait``, say), then returns ``value``.

    ``wait`` is called only when awaited, so leaving it un-awaited creates no coroutine.
    """

    __slots__ = ("value", "wait")

    def __init__(self, wait: Callable[[], Awaitable[Any]], value: T) -> None:
        self.wait = wait
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        yield from self.wait().__await__()
        return self.value
