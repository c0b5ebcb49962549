"""Ready-made middlewares: exception catcher, structured logging, metrics.

A handler is ``handler(sender, message)`` returning None or an awaitable; a
middleware is ``middleware(next_handler) -> handler`` (see
:mod:`goomerang_proto.router`). Every middleware here awaits
``next_handler``'s result when it is awaitable, so it wraps sync and async
handlers alike; the handlers they return may themselves return an
awaitable, which the endpoint awaits. Register them on a
server or a client in the order they should run, outermost first, e.g.::

    server.middleware(panic_middleware(report))     # outermost: sees every exception
    server.middleware(logging_middleware())
    server.middleware(metrics_middleware(metrics))
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from goomerang_proto.message import Message
from goomerang_proto.router import Handler, Middleware

from .metrics import ClientMetrics, ServerMetrics

__all__ = ["logging_middleware", "metrics_middleware", "panic_middleware"]

_log = logging.getLogger("goomerang.messages")


async def _call(next_handler: Handler, sender: Any, message: Message[Any]) -> None:
    result = next_handler(sender, message)
    if inspect.isawaitable(result):
        await result


def panic_middleware(on_panic: Callable[[BaseException, Message[Any]], Any]) -> Middleware:
    """Catch every ``Exception`` raised by the rest of the chain.

    ``on_panic(exception, message)`` is called (an awaitable result is
    awaited) and the exception is swallowed, so the connection and the
    endpoint live on. ``asyncio.CancelledError``, ``KeyboardInterrupt`` and
    ``SystemExit`` are not ``Exception`` and pass through untouched, as
    shutdown needs. An exception raised by ``on_panic`` itself propagates
    (the adapter's error hook reports it).
    """

    def middleware(next_handler: Handler) -> Handler:
        async def handler(sender: Any, message: Message[Any]) -> None:
            try:
                await _call(next_handler, sender, message)
            except Exception as exc:
                reported = on_panic(exc, message)
                if inspect.isawaitable(reported):
                    await reported

        return handler

    return middleware


def logging_middleware(
    logger: logging.Logger | None = None, level: int = logging.INFO
) -> Middleware:
    """Log one record per handled message, after the rest of the chain ran.

    The record's message is ``"message processed"`` (``"message failed"``
    when the chain raised; the exception is re-raised, with ``exc_info`` on
    the record) and carries these attributes (``extra``): ``kind``,
    ``headers`` (a copy), ``payload_size`` (bytes), ``processing_seconds``,
    ``is_sync``, ``uuid``. A JSON log formatter picks them up as fields.
    The default logger is ``goomerang.messages``. The payload itself is not
    logged (it may hold personal data); log it from a handler if needed.
    """
    log = logger if logger is not None else _log

    def middleware(next_handler: Handler) -> Handler:
        async def handler(sender: Any, message: Message[Any]) -> None:
            if not log.isEnabledFor(level):
                await _call(next_handler, sender, message)
                return
            start = time.perf_counter()
            failed: BaseException | None = None
            try:
                await _call(next_handler, sender, message)
            except BaseException as exc:
                failed = exc
                raise
            finally:
                log.log(
                    level,
                    "message failed" if failed is not None else "message processed",
                    exc_info=failed if isinstance(failed, Exception) else None,
                    extra={
                        "kind": message.kind,
                        "headers": dict(message.headers),
                        "payload_size": message.payload_size,
                        "processing_seconds": time.perf_counter() - start,
                        "is_sync": message.is_sync,
                        "uuid": message.uuid,
                    },
                )

        return handler

    return middleware


def metrics_middleware(metrics: ServerMetrics | ClientMetrics) -> Middleware:
    """Record every handled message in ``metrics``.

    Before the chain: ``message_received(kind, payload_size, inflight)``,
    where inflight is the wall-clock time since the sender packed the frame
    (None when the frame had no creation time; negative skew counts as 0),
    and ``worker_started()`` (Go's concurrent workers: handlers running).
    After it, even when it raised: ``message_processed(kind, seconds)`` and
    ``worker_finished()``. Sends made by the handler are recorded by the
    endpoint, not here.

    This one sits on the hot path: the recorder's own inlined version
    (:meth:`~goomerang_io.metrics.ServerMetrics.handler_middleware`), whose
    handler is a plain function that returns an awaitable only when the rest
    of the chain did (no coroutine per message for synchronous handlers).
    """
    return metrics.handler_middleware()
