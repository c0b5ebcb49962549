"""One message to many connections: the frame is made once and each target queues it.

``result(size, duration, conn_id, ok)`` builds the per-target report (the
server's ``BroadcastResult``): ``size`` is the payload's bytes, ``duration``
the seconds spent queueing it on that target, ``ok`` False when the target
was not RUNNING or refused it (a target past ``slow_client_limit`` is failed
by its engine and closed with ``slow_client_code``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from goomerang_proto import Message, Status, prepare

__all__ = ["Target", "fan_out"]

R = TypeVar("R")


class Target(Protocol):
    """A connection a fan-out writes to."""

    @property
    def conn_id(self) -> int: ...

    @property
    def engine(self) -> Any: ...  # its ``status``

    def write_prepared(self, frame: bytes, *, in_response: bool = False) -> bool: ...


def fan_out(
    message: Message[Any],
    targets: Iterable[Target],
    origin: Target | None,
    result: Callable[[int, float, int, bool], R],
) -> list[R]:
    """Queue ``message`` on every target; one ``result`` each, in order.

    ``origin``: the connection whose command (BroadcastCmd, PublishCmd) started the
    fan-out; its own copy counts as output its input caused (``in_response``), so it
    pauses that connection's reading above high water instead of failing it.
    """
    frame = prepare(message, creation_ns=time.time_ns())
    size, results, perf = message.payload.ByteSize(), [], time.perf_counter
    for conn in list(targets):
        t0 = perf()
        ok = conn.engine.status is Status.RUNNING and conn.write_prepared(
            frame, in_response=conn is origin
        )
        results.append(result(size, perf() - t0, conn.conn_id, ok))
    return results
