"""The supervisor's self-pipe: signals and stop requests queue up and wake its selector loop."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
from collections import deque
from typing import Any

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
"""The signals the supervisor handles (its workers start with them blocked)."""


class Wakeup:
    """A queue of signal numbers and requests (``"stop"``), and the pipe that wakes the loop.

    Signal handlers only append to :attr:`queue`; ``signal.set_wakeup_fd``
    writes to the pipe, so the selector wakes and the loop reads the queue.
    """

    def __init__(self) -> None:
        self.queue: deque[int | str] = deque()
        self.read_fd = self.write_fd = -1

    def open(self, sel: selectors.BaseSelector) -> None:
        """Make the pipe and have ``sel`` watch (and empty) it."""
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        sel.register(self.read_fd, selectors.EVENT_READ, self._drain)

    def post(self, item: int | str) -> None:
        """Queue ``item`` and wake the loop (safe from any thread or a signal handler)."""
        self.queue.append(item)
        if self.write_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self.write_fd, b"\0")

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Only enqueue: the loop dispatches (set_wakeup_fd already woke it).
        self.queue.append(signum)

    def install_signals(self) -> dict[int, Any]:
        """Route the HANDLED signals here (main thread only); returns what to restore."""
        saved: dict[int, Any] = {}
        for sig in HANDLED:
            saved[sig] = signal.signal(sig, self._on_signal)
        saved[-1] = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        return saved

    @staticmethod
    def restore_signals(saved: dict[int, Any]) -> None:
        """Put back the handlers ``install_signals`` replaced."""
        if not saved:
            return
        signal.set_wakeup_fd(saved.pop(-1))
        for sig, handler in saved.items():
            signal.signal(sig, handler)

    def _drain(self, _mask: int) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self.read_fd, 4096):
                pass

    def close(self) -> None:
        """Close the pipe (idempotent; in a forked child too)."""
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.read_fd = self.write_fd = -1


__all__ = ["HANDLED", "Wakeup"]
