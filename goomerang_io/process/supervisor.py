"""Worker processes on one port: the supervisor of a multi-core server.

Theory of operation (after gunicorn's arbiter and uvicorn's multiprocess
supervisor). ``Supervisor.run()`` forks ``workers`` children; each runs
``worker_main(ctx)`` and builds its own event loop and its own
SO_REUSEPORT listening socket *after* the fork (``bind_reuseport``), so
the kernel spreads connections over them. The parent never runs asyncio:
it is one ``selectors`` loop over

* a self-pipe: signal handlers only append the signal to a queue and wake
  the loop (``signal.set_wakeup_fd``); the loop then dispatches
  ``handle_term``, ``handle_int``, ``handle_chld``;
* one "ready" pipe per worker: the worker calls ``ctx.ready()`` once it
  accepts connections, which writes one byte;
* the embedded backplane hub (``LocalHub``) when ``hub=True``.

Lifecycle rules:

* boot failure: a worker that exits before ``ready()``, or does not call
  it within ``boot_timeout``, stops every worker and ``run()`` returns
  ``EXIT_BOOT_FAILURE`` with the reason on stderr; a broken worker never
  loops through restarts.
* a worker that dies after ``ready()`` is restarted in the same slot
  (``index`` kept, ``generation`` + 1) after an exponential backoff
  (``restart_backoff = (first, cap)``), reset once a worker stayed up.
* SIGTERM/SIGINT/SIGHUP (or ``request_stop()``): every worker gets SIGTERM and
  has ``shutdown_timeout`` seconds to close its clients and finish its
  handlers; stragglers get SIGKILL; ``run()`` returns 0. A second stop
  request while stopping kills the stragglers at once.
* dead supervisor: on Linux each worker gets SIGTERM from the kernel when
  the supervisor dies (``PR_SET_PDEATHSIG``); everywhere, the worker can
  watch the EOF of an inherited pipe with ``ctx.watch_parent(loop, cb)``.

In the worker, SIGTERM and SIGCHLD start at their defaults and SIGINT and
SIGHUP are ignored (a Ctrl-C or a hang-up reaches the whole process group;
the supervisor turns it into an orderly SIGTERM). The worker's own code installs its SIGTERM
handler (e.g. ``loop.add_signal_handler``) for a graceful stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import selectors
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..backplane.hub import LocalHub

__all__ = [
    "EXIT_BOOT_FAILURE",
    "Supervisor",
    "WorkerContext",
    "restart_delay",
    "watch_parent",
]

log = logging.getLogger("goomerang.supervisor")

#: ``run()``'s return value when a worker failed to boot (as gunicorn's WORKER_BOOT_ERROR).
EXIT_BOOT_FAILURE = 3

# A worker that stayed up this long (seconds) resets its restart backoff.
_STABLE_AFTER = 5.0
_PR_SET_PDEATHSIG = 1


class _ReaderLoop(Protocol):
    def add_reader(self, fd: int, callback: Callable[..., Any], *args: Any) -> None: ...

    def remove_reader(self, fd: int) -> bool: ...


def watch_parent(
    loop: _ReaderLoop, callback: Callable[[], None], parent_fd: int, parent_pid: int
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

    def watch_parent(self, loop: _ReaderLoop, callback: Callable[[], None]) -> None:
        """Call ``callback`` once on ``loop`` when the supervisor dies."""
        watch_parent(loop, callback, self.parent_fd, self.parent_pid)

    def parent_alive(self) -> bool:
        """True while the supervisor that forked this worker is alive."""
        return os.getppid() == self.parent_pid


def restart_delay(failures: int, first: float, cap: float) -> float:
    """Backoff before restarting a worker that died ``failures`` times in a row (0-based)."""
    if failures <= 0:
        return min(first, cap)
    return min(cap, first * (2.0 ** min(failures, 62)))


def _set_pdeathsig(sig: int) -> None:
    """Linux: have the kernel send ``sig`` to this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


@dataclass
class _Slot:
    index: int
    generation: int = -1
    pid: int = 0
    ready: bool = False
    ready_fd: int = -1
    spawned_at: float = 0.0
    restart_at: float | None = None
    failures: int = 0


class Supervisor:
    """Runs ``workers`` forked processes of ``worker_main`` and keeps them running.

    See the module docstring for the rules. ``run()`` blocks and returns
    the exit code: 0 after a stop request, ``EXIT_BOOT_FAILURE`` when a
    worker failed to boot. ``on_worker_exit(pid, code)`` runs in the
    supervisor for every reaped worker (``code`` negative: killed by that
    signal), e.g. for prometheus ``mark_process_dead``. ``on_worker_ready
    (index, pid)`` and ``on_ready()`` (all workers booted, once) are
    notifications. ``hub=True`` runs the embedded backplane hub and gives
    its path to the workers.
    """

    def __init__(
        self,
        worker_main: Callable[[WorkerContext], int | None],
        workers: int,
        *,
        shutdown_timeout: float = 10.0,
        boot_timeout: float = 30.0,
        restart_backoff: tuple[float, float] = (0.1, 5.0),
        name: str = "goomerang",
        on_worker_exit: Callable[[int, int], None] | None = None,
        on_worker_ready: Callable[[int, int], None] | None = None,
        on_ready: Callable[[], None] | None = None,
        hub: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._worker_main = worker_main
        self.workers = workers
        self.shutdown_timeout = shutdown_timeout
        self.boot_timeout = boot_timeout
        self.restart_backoff = restart_backoff
        self.name = name
        self.on_worker_exit = on_worker_exit
        self.on_worker_ready = on_worker_ready
        self.on_ready = on_ready
        self.use_hub = hub
        self.hub: LocalHub | None = None
        self.hub_path: str | None = None
        self._slots = [_Slot(i) for i in range(workers)]
        self._queue: deque[int | str] = deque()
        self._sel: selectors.BaseSelector | None = None
        self._wake_r = self._wake_w = -1
        self._alive_r = self._alive_w = -1
        self._parent_pid = 0
        self._tmpdir: str | None = None
        self._stopping = False
        self._stop_deadline = 0.0
        self._exit_code = 0
        self._all_ready_fired = False
        self._running = False
        self._main_thread = False

    # public ----------------------------------------------------------------

    def worker_pids(self) -> list[int]:
        """The pids of the live workers, by slot."""
        return [s.pid for s in self._slots if s.pid]

    def request_stop(self) -> None:
        """Ask for a graceful stop, as SIGTERM does (safe from any thread or a signal handler)."""
        self._enqueue("stop")

    def run(self) -> int:
        """Fork the workers and supervise them until stopped; return the exit code."""
        if self._running:
            raise RuntimeError("Supervisor.run() is already running")
        self._running = True
        self._parent_pid = os.getpid()
        self._main_thread = threading.current_thread() is threading.main_thread()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        self._alive_r, self._alive_w = os.pipe()
        saved = self._install_signals()
        try:
            if self.use_hub:
                self._tmpdir = tempfile.mkdtemp(prefix=f"{self.name}-")
                self.hub_path = os.path.join(self._tmpdir, "hub.sock")
                self.hub = LocalHub(self.hub_path)
                self.hub.attach(self._sel)
            for slot in self._slots:
                self._spawn(slot)
            return self._loop()
        finally:
            self._kill_all_now()
            self._restore_signals(saved)
            self._cleanup()
            self._running = False

    # signals ----------------------------------------------------------------

    def _enqueue(self, item: int | str) -> None:
        self._queue.append(item)
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"\0")

    def _signal_handler(self, signum: int, _frame: object) -> None:
        # Only enqueue: the loop dispatches (set_wakeup_fd already woke it).
        self._queue.append(signum)

    def _install_signals(self) -> dict[int, Any]:
        saved: dict[int, Any] = {}
        if not self._main_thread:
            return saved
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            saved[sig] = signal.signal(sig, self._signal_handler)
        saved[-1] = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        return saved

    def _restore_signals(self, saved: dict[int, Any]) -> None:
        if not saved:
            return
        signal.set_wakeup_fd(saved.pop(-1))
        for sig, handler in saved.items():
            signal.signal(sig, handler)

    def _on_wake(self, _mask: int) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self._wake_r, 4096):
                pass

    def _dispatch(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            if item == "stop":
                self.handle_term()
                continue
            assert isinstance(item, int)
            name = signal.Signals(item).name[3:].lower()
            handler = getattr(self, f"handle_{name}", None)
            if handler is not None:
                handler()

    def handle_term(self) -> None:
        """SIGTERM: graceful stop; a second one kills the stragglers now."""
        if self._stopping:
            self._signal_all(signal.SIGKILL)
            self._stop_deadline = time.monotonic()
            return
        log.info("%s: stopping %d worker(s)", self.name, len(self.worker_pids()))
        self._begin_stop(0)

    def handle_int(self) -> None:
        """SIGINT (Ctrl-C): same as SIGTERM."""
        self.handle_term()

    def handle_hup(self) -> None:
        """SIGHUP (the terminal went away, or a reload request): a graceful stop, as SIGTERM.

        Workers are not reloaded in place: restart the whole server to load new code.
        """
        self.handle_term()

    def handle_chld(self) -> None:
        """SIGCHLD: reaping happens on every loop turn; nothing more to do."""

    # the loop ----------------------------------------------------------------

    def _loop(self) -> int:
        assert self._sel is not None
        tick = 1.0 if self._main_thread else 0.05
        while True:
            timeout = self._timeout(tick)
            for key, mask in self._sel.select(timeout):
                key.data(mask)
            self._dispatch()
            self._reap()
            now = time.monotonic()
            if self._stopping:
                if not self.worker_pids():
                    return self._exit_code
                if now >= self._stop_deadline:
                    stragglers = self.worker_pids()
                    log.warning(
                        "%s: worker(s) %s did not stop within %.1fs; killing them",
                        self.name,
                        stragglers,
                        self.shutdown_timeout,
                    )
                    self._kill_all_now()
                    return self._exit_code
                continue
            self._check_boot(now)
            self._check_restarts(now)

    def _timeout(self, tick: float) -> float:
        now = time.monotonic()
        deadlines = [now + tick]
        if self._stopping:
            deadlines.append(self._stop_deadline)
        for s in self._slots:
            if s.pid and not s.ready:
                deadlines.append(s.spawned_at + self.boot_timeout)
            if s.restart_at is not None:
                deadlines.append(s.restart_at)
        return max(0.0, min(deadlines) - now)

    def _check_boot(self, now: float) -> None:
        for s in self._slots:
            if s.pid and not s.ready and now - s.spawned_at >= self.boot_timeout:
                self._drain_ready(s)
                if s.ready:
                    continue
                with contextlib.suppress(ProcessLookupError):
                    os.kill(s.pid, signal.SIGKILL)  # stuck: no graceful stop for it
                self._boot_failure(s, f"did not call ready() within {self.boot_timeout:.1f}s")
                return

    def _check_restarts(self, now: float) -> None:
        for s in self._slots:
            if s.restart_at is not None and now >= s.restart_at:
                s.restart_at = None
                self._spawn(s)

    def _begin_stop(self, code: int) -> None:
        self._stopping = True
        self._exit_code = code
        self._stop_deadline = time.monotonic() + self.shutdown_timeout
        for s in self._slots:
            s.restart_at = None
        self._signal_all(signal.SIGTERM)

    def _boot_failure(self, slot: _Slot, why: str) -> None:
        msg = (
            f"{self.name}: worker {slot.index} (pid {slot.pid}, generation {slot.generation}) "
            f"failed to boot: it {why}. Stopping all workers instead of restarting it; "
            "see the worker's error above."
        )
        log.error(msg)  # with no logging configured, logging's last resort prints it to stderr
        self._begin_stop(EXIT_BOOT_FAILURE)

    def _signal_all(self, sig: int) -> None:
        for pid in self.worker_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    # children ----------------------------------------------------------------

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            self._on_exit(pid, os.waitstatus_to_exitcode(status))

    def _on_exit(self, pid: int, code: int) -> None:
        slot = next((s for s in self._slots if s.pid == pid), None)
        if self.on_worker_exit is not None:
            try:
                self.on_worker_exit(pid, code)
            except Exception:
                log.exception("%s: on_worker_exit hook failed", self.name)
        if slot is None:
            return
        self._drain_ready(slot)
        self._close_ready(slot)
        slot.pid = 0
        if self._stopping:
            if code != 0:
                log.warning(
                    "%s: worker %d (pid %d) exited with code %d while stopping",
                    self.name,
                    slot.index,
                    pid,
                    code,
                )
            return
        if not slot.ready:
            slot.pid = pid  # name it in the message
            self._boot_failure(slot, f"exited with code {code} before it was ready")
            slot.pid = 0
            return
        uptime = time.monotonic() - slot.spawned_at
        if uptime >= _STABLE_AFTER:
            slot.failures = 0
        delay = restart_delay(slot.failures, *self.restart_backoff)
        slot.failures += 1
        slot.restart_at = time.monotonic() + delay
        log.warning(
            "%s: worker %d (pid %d) exited with code %d; restarting it in %.2fs",
            self.name,
            slot.index,
            pid,
            code,
            delay,
        )

    def _drain_ready(self, slot: _Slot) -> None:
        if slot.ready_fd < 0:
            return
        try:
            data = os.read(slot.ready_fd, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self._mark_ready(slot)
        else:
            self._close_ready(slot)

    def _close_ready(self, slot: _Slot) -> None:
        if slot.ready_fd < 0:
            return
        assert self._sel is not None
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(slot.ready_fd)
        os.close(slot.ready_fd)
        slot.ready_fd = -1

    def _mark_ready(self, slot: _Slot) -> None:
        if slot.ready:
            return
        slot.ready = True
        log.info("%s: worker %d (pid %d) ready", self.name, slot.index, slot.pid)
        if self.on_worker_ready is not None:
            try:
                self.on_worker_ready(slot.index, slot.pid)
            except Exception:
                log.exception("%s: on_worker_ready hook failed", self.name)
        if not self._all_ready_fired and all(s.ready for s in self._slots):
            self._all_ready_fired = True
            if self.on_ready is not None:
                try:
                    self.on_ready()
                except Exception:
                    log.exception("%s: on_ready hook failed", self.name)

    def _spawn(self, slot: _Slot) -> None:
        assert self._sel is not None
        slot.generation += 1
        slot.ready = False
        ready_r, ready_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # Signals stay blocked across the fork: a SIGTERM must not reach the
        # child while it still has the supervisor's handlers (it would be lost).
        blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child (its exit code is what tests see)
                os.close(ready_r)
                self._child(slot, ready_w, old_mask)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        slot.pid = pid
        slot.ready_fd = ready_r
        slot.spawned_at = time.monotonic()

        def on_ready_pipe(_mask: int, slot: _Slot = slot) -> None:
            self._drain_ready(slot)

        self._sel.register(ready_r, selectors.EVENT_READ, on_ready_pipe)

    def _child(
        self, slot: _Slot, ready_w: int, mask: set[int | signal.Signals]
    ) -> None:  # pragma: no cover - child process
        code = 1
        try:
            if self._main_thread:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor turns it to SIGTERM
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            self._close_parent_fds()
            _set_pdeathsig(signal.SIGTERM)
            if os.getppid() != self._parent_pid:
                os._exit(1)
            ready_fd = [ready_w]

            def ready() -> None:
                if ready_fd:
                    fd = ready_fd.pop()
                    with contextlib.suppress(OSError):
                        os.write(fd, b"R")
                    os.close(fd)

            ctx = WorkerContext(
                index=slot.index,
                generation=slot.generation,
                ready=ready,
                backplane_path=self.hub_path,
                parent_pid=self._parent_pid,
                parent_fd=self._alive_r,
                workers=self.workers,
                name=self.name,
            )
            result = self._worker_main(ctx)
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

    def _close_parent_fds(self) -> None:  # pragma: no cover - child process
        """In a fresh child: close what belongs to the supervisor (no selector calls)."""
        if self.hub is not None:
            self.hub.close_in_child()
        fds = [self._wake_r, self._wake_w, self._alive_w]
        fds += [s.ready_fd for s in self._slots if s.ready_fd >= 0]
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._sel is not None:
            # closes the epoll fd only; the parent's registrations are untouched
            with contextlib.suppress(Exception):
                self._sel.close()
        self._sel = None

    def _kill_all_now(self) -> None:
        self._stopping = True
        pids = self.worker_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(pid, 0)
                self._on_exit(pid, os.waitstatus_to_exitcode(status))

    def _cleanup(self) -> None:
        for s in self._slots:
            self._close_ready(s)
        if self.hub is not None:
            self.hub.close()
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        for fd in (self._wake_r, self._wake_w, self._alive_r, self._alive_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = self._alive_r = self._alive_w = -1
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
