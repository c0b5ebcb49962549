"""A virtual clock for the in-memory pair: time moves only when a test says so."""

from __future__ import annotations

DEFAULT_EPOCH_NS = 1_700_000_000 * 1_000_000_000
"""Wall time at virtual second 0: 2023-11-14T22:13:20Z, in nanoseconds since the Unix epoch."""


class VirtualClock:
    """Monotonic float seconds (``now``) plus a matching wall clock for envelope timestamps.

    ``now`` starts at ``start`` (0.0 by default) and changes only through
    :meth:`advance` (or by assignment from the pair). The engine takes time as
    arguments (``handle_timer(now)``, the ``clock`` callable for the Frame's
    ``creation`` field), so a virtual clock drives it exactly like a real one.
    """

    __slots__ = ("epoch_ns", "now")

    def __init__(self, start: float = 0.0, *, epoch_ns: int = DEFAULT_EPOCH_NS) -> None:
        self.now = float(start)
        self.epoch_ns = epoch_ns

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0); return the new ``now``. ValueError when negative."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back: advance({seconds})")
        self.now += seconds
        return self.now

    def wall_ns(self) -> int:
        """Nanoseconds since the Unix epoch at ``now`` (the engine's ``clock`` callable)."""
        return self.epoch_ns + round(self.now * 1_000_000_000)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now!r})"
