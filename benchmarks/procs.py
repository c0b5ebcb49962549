"""Server processes for the benchmarks: start pinned, wait for the port, measure, stop by PID.

Every server prints a line ``listening on SCHEME://HOST:PORT[/PATH]`` once it
accepts; :func:`start_server` waits for it (bounded), keeps draining the
server's output in a thread, and returns a :class:`Server`. ``stop()`` sends
SIGINT to that PID (graceful), then SIGTERM, then SIGKILL to the process
group the harness created for it, so nothing started here outlives a run.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

# ours and the peers print "listening on SCHEME://HOST:PORT..."; the Go refserver "READY HOST:PORT"
READY = re.compile(r"(?:listening on \w+://|^READY )(\S+):(\d+)")
ROOT = Path(__file__).resolve().parent.parent
_LIVE: set[Server] = set()


class ServerError(RuntimeError):
    """A server did not start, or did not print its port in time."""


def raise_nofile(want: int = 65536) -> int:
    """Raise this process's RLIMIT_NOFILE soft limit towards ``want`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """``argv`` prefixed with ``taskset -c CPUS`` (children inherit the mask)."""
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/PID/task/*/children)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            continue
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    seen = [pid]
    i = 0
    while i < len(seen):
        seen.extend(c for c in children(seen[i]) if c not in seen)
        i += 1
    return seen


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Server:
    """One running server process started by the harness."""

    def __init__(self, name: str, proc: subprocess.Popen[str]) -> None:
        self.name = name
        self.proc = proc
        self.pid = proc.pid
        self.port = 0
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if len(self.lines) < 200:
                self.lines.append(line.rstrip())
            if not self._ready.is_set():
                m = READY.search(line)
                if m:
                    self.port = int(m.group(2))
                    self._ready.set()
        self._ready.set()  # EOF: wake the waiter, port stays 0

    def wait_ready(self, timeout: float) -> int:
        """Block until the server printed its port; return it."""
        if not self._ready.wait(timeout) or self.port == 0:
            tail = "\n".join(self.lines[-20:])
            raise ServerError(f"{self.name} printed no 'listening on' line in {timeout} s:\n{tail}")
        return self.port

    def rss_kib(self) -> int:
        """Summed VmRSS of the server and every process under it (workers), in KiB."""
        return sum(rss_kib(p) for p in tree(self.pid))

    def stop(self, grace: float = 10.0) -> bool:
        """Stop the server by PID; return True when it exited after SIGINT alone."""
        _LIVE.discard(self)
        if self.proc.poll() is not None:
            return True
        graceful = True
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0)):
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                return graceful
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                graceful = False
        else:
            try:
                os.killpg(self.pid, signal.SIGKILL)  # the group we created for it
            except ProcessLookupError:
                pass
            self.proc.wait(5)
        self._reader.join(2)
        return graceful


def start_server(
    name: str, argv: Sequence[str], cpus: str | None, ready_timeout: float = 60.0
) -> Server:
    """Start ``argv`` pinned to ``cpus`` in its own session and wait for its port."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        pinned(argv, cpus),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    server = Server(name, proc)
    _LIVE.add(server)
    try:
        server.wait_ready(ready_timeout)
    except BaseException:
        server.stop(grace=2.0)
        raise
    return server


def stop_all() -> None:
    """Stop every server this process started and has not stopped yet."""
    for server in list(_LIVE):
        server.stop(grace=3.0)


def settle_rss(server: Server, timeout: float = 5.0) -> int:
    """Read the server's RSS until two reads 200 ms apart agree within 0.5%."""
    deadline = time.monotonic() + timeout
    last = server.rss_kib()
    while time.monotonic() < deadline:
        time.sleep(0.2)  # RSS sampling interval, not synchronisation
        now = server.rss_kib()
        if abs(now - last) <= max(64, last // 200):
            return now
        last = now
    return last
