"""The supervisor's worker slots: each slot's process, its readiness and its restart backoff."""

from __future__ import annotations

from dataclasses import dataclass

STABLE_AFTER = 5.0
"""A worker that stayed up this long (seconds) resets its restart backoff."""


def restart_delay(failures: int, first: float, cap: float) -> float:
    """Backoff before restarting a worker that died ``failures`` times in a row (0-based)."""
    if failures <= 0:
        return min(first, cap)
    return min(cap, first * (2.0 ** min(failures, 62)))


@dataclass
class Slot:
    """One worker position (``index`` 0..workers-1); a restart keeps it, ``generation`` + 1."""

    index: int
    generation: int = -1
    pid: int = 0
    ready: bool = False
    ready_fd: int = -1
    spawned_at: float = 0.0
    restart_at: float | None = None
    failures: int = 0

    def schedule_restart(self, now: float, first: float, cap: float) -> float:
        """The worker died after it was ready: restart it after a backoff; returns the delay.

        The backoff doubles with each death in a row (``restart_delay``) and
        starts again once a worker stayed up ``STABLE_AFTER`` seconds.
        """
        if now - self.spawned_at >= STABLE_AFTER:
            self.failures = 0
        delay = restart_delay(self.failures, first, cap)
        self.failures += 1
        self.restart_at = now + delay
        return delay


__all__ = ["STABLE_AFTER", "Slot", "restart_delay"]
