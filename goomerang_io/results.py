"""What a fan-out reports per client (runtime-neutral: asyncio and trio servers return it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BroadcastResult:
    """Per-client outcome of a broadcast: bytes of payload and time spent writing.

    A fan-out that a client's command starts (BroadcastCmd, PublishCmd) is
    written when the read that carried it has been handled, so that several
    fan-outs from one read reach each target in one write; ``duration`` then
    is the time to queue the frame.
    """

    size: int
    duration: float
    conn_id: int
    ok: bool = True


__all__ = ["BroadcastResult"]
