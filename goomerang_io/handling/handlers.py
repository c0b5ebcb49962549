"""Running a handler chain, the same on every runtime: what its failure becomes.

A handler is ``chain(sender, message)``: a plain function, or one returning an
awaitable that the runtime awaits. ``Exception`` is caught, never
``BaseException``: cancellation (``asyncio.CancelledError``, ``trio.Cancelled``)
passes through, so these wrappers fit either loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from goomerang_proto import Closing, HandlerError, Message, NotRunning

from ..awaitables import Ready
from ..sender import Sender

__all__ = ["Job", "handler_error", "on_failure"]

Job = tuple[Callable[..., Any], Sender, Message[Any]]
"""A handler to run, as an event gives it: ``chain(sender, message)``."""


def ending_send(exc: BaseException) -> bool:
    """Whether a handler's ``exc`` is a send refused because its connection is ending
    (Closing, NotRunning): that end is the peer's close, a shutdown or a loss reported
    once by the connection, not a failure of every handler still running (the blocking
    client filters the same)."""
    return isinstance(exc, Closing | NotRunning)


def handler_error(exc: BaseException, message: Message[Any]) -> HandlerError:
    """The HandlerError reported for ``exc`` raised by the handler of ``message`` (its cause)."""
    err = HandlerError(f"handler for {message.kind} raised {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def on_failure(
    chain: Callable[..., Any], failed: Callable[[Message[Any]], None]
) -> Callable[..., Any]:
    """``chain`` that calls ``failed(message)`` when it raises (at once, or from its awaitable),
    then raises on: the runtime still reports the failure as it reports any other."""

    def run(sender: Any, message: Message[Any]) -> Any:
        try:
            result = chain(sender, message)
        except Exception:
            failed(message)
            raise
        if result is None or type(result) is Ready or not inspect.isawaitable(result):
            return result
        return _awaited(result, failed, message)

    return run


async def _awaited(
    result: Awaitable[Any], failed: Callable[[Message[Any]], None], message: Message[Any]
) -> Any:
    try:
        return await result
    except Exception:
        failed(message)
        raise
