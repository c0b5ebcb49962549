"""The worker's side of the supervisor: what a worker learns, and how it sees its parent die."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

_PR_SET_PDEATHSIG = 1


class ReaderLoop(Protocol):
    """An event loop that watches file descriptors (asyncio's ``add_reader``, for one)."""

    def add_reader(self, fd: int, callback: Callable[..., Any], *args: Any) -> None: ...

    def remove_reader(self, fd: int) -> bool: ...


def watch_parent(
    loop: ReaderLoop, callback: Callable[[], None], parent_fd: int, parent_pid: int
) -> None:
    """Call ``callback`` once on ``loop`` when the supervisor process is gone.

    ``parent_fd`` is the read end of a pipe whose write end only the
    supervisor holds: it turns readable (EOF) when the supervisor dies.
    """
    fired = False

    def fire() -> None:
        nonlocal fired
        if fired:
            return
        fired = True
        with contextlib.suppress(Exception):
            loop.remove_reader(parent_fd)
        callback()

    loop.add_reader(parent_fd, fire)
    if os.getppid() != parent_pid:  # died before we started watching
        fire()


@dataclass
class WorkerContext:
    """What a worker process learns from its supervisor.

    ``index`` is the worker's slot (0..workers-1, stable across restarts);
    ``generation`` counts the restarts of that slot (0 at first boot).
    Call ``ready()`` once the worker accepts connections. The supervisor
    asks a worker to stop with ``stop_signal`` (SIGTERM).
    ``backplane_path`` is the Unix socket of the embedded hub, or None.
    """

    index: int
    generation: int
    ready: Callable[[], None]
    backplane_path: str | None
    parent_pid: int
    parent_fd: int
    workers: int = 1
    stop_signal: int = signal.SIGTERM
    name: str = "goomerang"

    def watch_parent(self, loop: ReaderLoop, callback: Callable[[], None]) -> None:
        """Call ``callback`` once on ``loop`` when the supervisor dies."""
        watch_parent(loop, callback, self.parent_fd, self.parent_pid)

    def parent_alive(self) -> bool:
        """True while the supervisor that forked this worker is alive."""
        return os.getppid() == self.parent_pid


def set_pdeathsig(sig: int) -> None:
    """Linux: have the kernel send ``sig`` to this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def ready_notifier(ready_w: int) -> Callable[[], None]:
    """``ctx.ready``: its first call writes one byte to the ready pipe, then closes it."""
    ready_fd = [ready_w]

    def ready() -> None:
        if ready_fd:
            fd = ready_fd.pop()
            with contextlib.suppress(OSError):
                os.write(fd, b"R")
            os.close(fd)

    return ready


def run_worker(
    worker_main: Callable[[WorkerContext], int | None],
    ctx: WorkerContext,
    mask: set[int | signal.Signals],
    main_thread: bool,
    close_parent_fds: Callable[[], None],
) -> NoReturn:  # pragma: no cover - child process
    """In a fresh child: run ``worker_main(ctx)`` and exit with its code (never returns).

    SIGTERM and SIGCHLD go back to their defaults and SIGINT and SIGHUP are
    ignored (when forked from the main thread), the signal ``mask`` of
    before the fork comes back, ``close_parent_fds()`` drops what belongs to
    the supervisor and SIGTERM comes when the supervisor dies (Linux). An
    exception is printed and exits 1.
    """
    code = 1
    try:
        if main_thread:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor turns it to SIGTERM
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        close_parent_fds()
        set_pdeathsig(signal.SIGTERM)
        if os.getppid() != ctx.parent_pid:
            os._exit(1)
        result = worker_main(ctx)
        code = int(result or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


__all__ = [
    "ReaderLoop",
    "WorkerContext",
    "ready_notifier",
    "run_worker",
    "set_pdeathsig",
    "watch_parent",
]
