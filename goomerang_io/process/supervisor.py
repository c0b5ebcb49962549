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
import logging
import os
import selectors
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from ..backplane.hub import LocalHub
from .slots import Slot, restart_delay
from .wakeup import HANDLED, Wakeup
from .worker_context import WorkerContext, ready_notifier, run_worker, watch_parent

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
        self._slots = [Slot(i) for i in range(workers)]
        self._wakeup = Wakeup()
        self._sel: selectors.BaseSelector | None = None
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
        self._wakeup.post("stop")

    def run(self) -> int:
        """Fork the workers and supervise them until stopped; return the exit code."""
        if self._running:
            raise RuntimeError("Supervisor.run() is already running")
        self._running = True
        self._parent_pid = os.getpid()
        self._main_thread = threading.current_thread() is threading.main_thread()
        self._sel = selectors.DefaultSelector()
        self._wakeup.open(self._sel)
        self._alive_r, self._alive_w = os.pipe()
        saved = self._wakeup.install_signals() if self._main_thread else {}
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
            self._wakeup.restore_signals(saved)
            self._cleanup()
            self._running = False

    # signals ----------------------------------------------------------------

    def _dispatch(self) -> None:
        queue = self._wakeup.queue
        while queue:
            item = queue.popleft()
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

    def _boot_failure(self, slot: Slot, why: str) -> None:
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
        delay = slot.schedule_restart(time.monotonic(), *self.restart_backoff)
        log.warning(
            "%s: worker %d (pid %d) exited with code %d; restarting it in %.2fs",
            self.name,
            slot.index,
            pid,
            code,
            delay,
        )

    def _drain_ready(self, slot: Slot) -> None:
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

    def _close_ready(self, slot: Slot) -> None:
        if slot.ready_fd < 0:
            return
        assert self._sel is not None
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(slot.ready_fd)
        os.close(slot.ready_fd)
        slot.ready_fd = -1

    def _mark_ready(self, slot: Slot) -> None:
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

    def _spawn(self, slot: Slot) -> None:
        assert self._sel is not None
        slot.generation += 1
        slot.ready = False
        ready_r, ready_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # Signals stay blocked across the fork: a SIGTERM must not reach the
        # child while it still has the supervisor's handlers (it would be lost).
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(HANDLED))
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child (its exit code is what tests see)
                os.close(ready_r)
                ctx = WorkerContext(
                    index=slot.index,
                    generation=slot.generation,
                    ready=ready_notifier(ready_w),
                    backplane_path=self.hub_path,
                    parent_pid=self._parent_pid,
                    parent_fd=self._alive_r,
                    workers=self.workers,
                    name=self.name,
                )
                run_worker(
                    self._worker_main, ctx, old_mask, self._main_thread, self._close_parent_fds
                )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        slot.pid = pid
        slot.ready_fd = ready_r
        slot.spawned_at = time.monotonic()

        def on_ready_pipe(_mask: int, slot: Slot = slot) -> None:
            self._drain_ready(slot)

        self._sel.register(ready_r, selectors.EVENT_READ, on_ready_pipe)

    def _close_parent_fds(self) -> None:  # pragma: no cover - child process
        """In a fresh child: close what belongs to the supervisor (no selector calls)."""
        if self.hub is not None:
            self.hub.close_in_child()
        self._wakeup.close()
        fds = [self._alive_w]
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
        self._wakeup.close()
        for fd in (self._alive_r, self._alive_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._alive_r = self._alive_w = -1
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
