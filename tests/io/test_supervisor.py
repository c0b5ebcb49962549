"""The supervisor with real processes, real signals and real sockets.

Each test runs a supervisor in a subprocess (this file is also its script:
``python test_supervisor.py MODE PORT WORKERS MARKDIR``) whose workers are
tiny asyncio TCP servers on one SO_REUSEPORT port. A worker answers
``pid`` with ``<pid> <index> <generation>``, ``bcast X`` by broadcasting X
over the embedded backplane, and ``wait`` with the next message it
received from another worker. It writes ``term-<pid>`` in MARKDIR when it
gets SIGTERM and ``parent-gone-<pid>`` when it sees the supervisor die.
The supervisor prints ``READY index pid generation``, ``EXIT pid code``,
``ALLREADY`` and ``RC code`` on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goomerang_io.process.sockets import bind_reuseport, pick_free_port, reserve_port
from goomerang_io.process.supervisor import (
    EXIT_BOOT_FAILURE,
    Supervisor,
    WorkerContext,
    restart_delay,
    watch_parent,
)

WAIT = 10.0

# ---------------------------------------------------------------- the script side


def _mark(markdir: str, name: str) -> None:
    Path(markdir, f"{name}-{os.getpid()}").touch()


def dummy_worker(ctx: WorkerContext, port: int, mode: str, markdir: str) -> int:
    """A worker: an asyncio line server on a SO_REUSEPORT socket."""
    if mode == "boot-fail" and ctx.index == 1:
        raise RuntimeError("boom at boot")
    if mode == "restart-boot-fail" and ctx.generation >= 1:
        raise RuntimeError("boom on restart")
    if mode == "never-ready":
        threading.Event().wait(60)  # deliberately never boots (killed by boot_timeout)
        return 0

    async def main() -> None:
        from goomerang_io.backplane import BackplaneMessage, LocalBackplane

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        inbox: asyncio.Queue[BackplaneMessage] = asyncio.Queue()

        def on_term() -> None:
            _mark(markdir, "term")
            stop.set()

        def on_parent_gone() -> None:
            _mark(markdir, "parent-gone")
            stop.set()

        if mode == "ignore-term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a straggler
        else:
            loop.add_signal_handler(signal.SIGTERM, on_term)
        ctx.watch_parent(loop, on_parent_gone)
        bp = None
        if ctx.backplane_path is not None:
            bp = LocalBackplane(ctx.backplane_path, node_id=f"w{ctx.index}-{os.getpid()}")
            await bp.start(inbox.put_nowait, lambda exc: print("BPERR", exc, flush=True))

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := (await reader.readline()).decode().strip():
                if line == "pid":
                    writer.write(f"{os.getpid()} {ctx.index} {ctx.generation}\n".encode())
                elif line.startswith("bcast ") and bp is not None:
                    await bp.broadcast("test.Kind", line[6:].encode())
                    writer.write(b"ok\n")
                elif line == "wait":
                    msg = await inbox.get()
                    writer.write(f"{msg.frame.decode()} {msg.origin}\n".encode())
                await writer.drain()
            writer.close()

        sock = bind_reuseport("127.0.0.1", port)
        server = await asyncio.start_server(handle, sock=sock)
        ctx.ready()
        await stop.wait()
        server.close()
        if bp is not None:
            await bp.close()

    asyncio.run(main())
    return 0


def script_main(argv: list[str]) -> int:
    """Run a supervisor configured by ``argv`` (see the module docstring)."""
    mode, port, workers, markdir = argv[0], int(argv[1]), int(argv[2]), argv[3]

    def say(*parts: object) -> None:
        print(*parts, flush=True)

    sup: Supervisor

    def on_ready() -> None:
        say("ALLREADY")
        if mode == "self-stop":
            sup.request_stop()

    def on_worker_ready(index: int, pid: int) -> None:
        gen = sup._slots[index].generation
        say("READY", index, pid, gen)

    sup = Supervisor(
        lambda ctx: dummy_worker(ctx, port, mode, markdir),
        workers,
        shutdown_timeout=0.5 if mode == "ignore-term" else 5.0,
        boot_timeout=0.5 if mode == "never-ready" else 10.0,
        restart_backoff=(0.05, 0.5),
        name="testsup",
        on_worker_exit=lambda pid, code: say("EXIT", pid, code),
        on_worker_ready=on_worker_ready,
        on_ready=on_ready,
        hub=mode == "hub",
    )
    code = sup.run()
    say("RC", code)
    return code


# ---------------------------------------------------------------- the test side


class SupervisorProc:
    """A supervisor subprocess with line-by-line access to its stdout."""

    def __init__(self, mode: str, workers: int, markdir: Path) -> None:
        self.port = pick_free_port("127.0.0.1")
        self.markdir = markdir
        self.proc = subprocess.Popen(
            [sys.executable, __file__, mode, str(self.port), str(workers), str(markdir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._buf = b""
        self.lines: list[str] = []
        self._seen = 0

    def expect(self, prefix: str, timeout: float = WAIT) -> list[str]:
        """The next stdout line starting with ``prefix`` (split in words)."""
        deadline = time.monotonic() + timeout
        while True:
            while self._seen < len(self.lines):
                line = self.lines[self._seen]
                self._seen += 1
                if line.startswith(prefix):
                    return line.split()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {prefix!r} line in {self.lines}; stderr: {self.stderr()}")
            ready, _, _ = select.select([self._fd], [], [], left)
            if ready:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    raise AssertionError(f"EOF before {prefix!r}: {self.lines}; {self.stderr()}")
                self._buf += chunk
                *complete, self._buf = self._buf.split(b"\n")
                self.lines += [c.decode() for c in complete]

    def wait(self, timeout: float = WAIT) -> int:
        """Wait for the exit, then read the rest of stdout into ``lines``."""
        code = self.proc.wait(timeout)
        os.set_blocking(self._fd, True)
        while chunk := os.read(self._fd, 65536):  # EOF: every process holding it is gone
            self._buf += chunk
        *complete, self._buf = self._buf.split(b"\n")
        self.lines += [c.decode() for c in complete]
        return code

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "<running>"
        return self.proc.stderr.read().decode(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


Spawn = Callable[..., SupervisorProc]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    procs: list[SupervisorProc] = []

    def start(mode: str, workers: int = 2) -> SupervisorProc:
        p = SupervisorProc(mode, workers, tmp_path)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()


def ask(port: int, line: str = "pid") -> list[str]:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(line.encode() + b"\n")
        return s.makefile("rb").readline().decode().split()


def pids_answering(port: int, want: set[int], attempts: int = 300) -> set[int]:
    """Connect (bounded) until every pid in ``want`` has answered; return who answered."""
    seen: set[int] = set()
    for _ in range(attempts):
        seen.add(int(ask(port)[0]))
        if want <= seen:
            break
    return seen


def wait_gone(pid: int, timeout: float = WAIT) -> None:
    """Wait (on a pidfd, no polling) until process ``pid`` has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"process {pid} still alive after {timeout}s"
    finally:
        os.close(fd)


def marks(markdir: Path, name: str) -> set[int]:
    return {int(p.name.rsplit("-", 1)[1]) for p in markdir.glob(f"{name}-*")}


@pytest.mark.timeout(60)
def test_workers_share_the_port_a_killed_worker_is_restarted_and_sigterm_stops_all(
    spawn: Spawn, tmp_path: Path
) -> None:
    sup = spawn("serve", 2)
    ready = [sup.expect("READY"), sup.expect("READY")]
    sup.expect("ALLREADY")
    by_index = {int(r[1]): int(r[2]) for r in ready}
    assert sorted(by_index) == [0, 1] and all(r[3] == "0" for r in ready)
    assert pids_answering(sup.port, set(by_index.values())) == set(by_index.values())

    victim, survivor = by_index[0], by_index[1]
    os.kill(victim, signal.SIGKILL)
    assert sup.expect("EXIT") == ["EXIT", str(victim), "-9"]
    answer = ask(sup.port)  # the port keeps serving while the slot restarts
    assert int(answer[0]) != victim
    restarted = sup.expect("READY")
    assert restarted[1] == "0" and restarted[3] == "1"  # same slot, next generation
    new = int(restarted[2])
    assert pids_answering(sup.port, {new, survivor}) == {new, survivor}

    sup.proc.send_signal(signal.SIGTERM)
    assert sup.wait() == 0
    assert sup.expect("RC") == ["RC", "0"]
    assert marks(tmp_path, "term") >= {new, survivor}  # each got SIGTERM and stopped itself
    exits = [line.split() for line in sup.lines if line.startswith("EXIT")]
    assert sorted(int(e[1]) for e in exits[1:]) == sorted([new, survivor])
    assert all(e[2] == "0" for e in exits[1:])  # graceful: exit code 0, not killed


def test_request_stop_from_a_hook_stops_every_worker_gracefully(
    spawn: Spawn, tmp_path: Path
) -> None:
    sup = spawn("self-stop", 2)
    pids = {int(sup.expect("READY")[2]), int(sup.expect("READY")[2])}
    assert sup.wait() == 0
    assert marks(tmp_path, "term") == pids


def test_a_worker_failing_at_boot_stops_the_supervisor_quickly(spawn: Spawn) -> None:
    t0 = time.monotonic()
    sup = spawn("boot-fail", 2)
    assert sup.wait() == EXIT_BOOT_FAILURE
    assert time.monotonic() - t0 < 8
    err = sup.stderr()
    assert "RuntimeError: boom at boot" in err  # the worker's own traceback
    assert "worker 1" in err and "failed to boot" in err and "exited with code 1" in err
    assert sup.expect("RC") == ["RC", str(EXIT_BOOT_FAILURE)]
    assert sum(line.startswith("EXIT") for line in sup.lines) == 2  # no restart loop


def test_a_restart_that_fails_to_boot_stops_instead_of_looping(spawn: Spawn) -> None:
    sup = spawn("restart-boot-fail", 2)
    first = int(sup.expect("READY")[2])
    sup.expect("READY")
    os.kill(first, signal.SIGKILL)
    assert sup.wait() == EXIT_BOOT_FAILURE
    err = sup.stderr()
    assert "boom on restart" in err and "generation 1" in err
    assert sum(line.startswith("EXIT") for line in sup.lines) == 3


def test_a_worker_that_never_calls_ready_is_a_boot_failure(spawn: Spawn) -> None:
    sup = spawn("never-ready", 1)
    assert sup.wait() == EXIT_BOOT_FAILURE
    assert "did not call ready() within 0.5s" in sup.stderr()
    assert sup.expect("EXIT")[2] == "-9"


def test_a_worker_ignoring_sigterm_is_killed_after_the_shutdown_timeout(spawn: Spawn) -> None:
    sup = spawn("ignore-term", 1)
    pid = int(sup.expect("READY")[2])
    sup.expect("ALLREADY")
    t0 = time.monotonic()
    sup.proc.send_signal(signal.SIGINT)  # Ctrl-C: same path as SIGTERM
    assert sup.wait() == 0
    assert 0.4 < time.monotonic() - t0 < 5
    assert sup.expect("EXIT") == ["EXIT", str(pid), "-9"]
    assert "did not stop within 0.5s" in sup.stderr()


def test_workers_exit_when_the_supervisor_is_killed(spawn: Spawn, tmp_path: Path) -> None:
    sup = spawn("serve", 2)
    pids = {int(sup.expect("READY")[2]), int(sup.expect("READY")[2])}
    sup.expect("ALLREADY")
    sup.proc.kill()
    sup.proc.wait(WAIT)
    for pid in pids:
        wait_gone(pid)
    # each stopped itself (PDEATHSIG delivers SIGTERM; the pipe EOF is the portable path)
    assert marks(tmp_path, "term") | marks(tmp_path, "parent-gone") == pids


def test_embedded_hub_relays_a_broadcast_between_workers(spawn: Spawn) -> None:
    sup = spawn("hub", 2)
    pids = {int(sup.expect("READY")[2]), int(sup.expect("READY")[2])}
    sup.expect("ALLREADY")
    conns: dict[int, tuple[socket.socket, io.BufferedReader]] = {}
    for _ in range(300):  # bounded: find one open connection to each worker
        s = socket.create_connection(("127.0.0.1", sup.port), timeout=WAIT)
        f = s.makefile("rb")
        s.sendall(b"pid\n")
        pid = int(f.readline().split()[0])
        if pid in conns:
            f.close()
            s.close()
        else:
            conns[pid] = (s, f)
        if set(conns) == pids:
            break
    assert set(conns) == pids
    (pa, (sa, fa)), (_pb, (sb, fb)) = sorted(conns.items())
    try:
        sb.sendall(b"wait\n")
        sa.sendall(b"bcast hello\n")
        assert fa.readline() == b"ok\n"
        frame, origin = fb.readline().decode().split()
        assert frame == "hello" and origin.endswith(f"-{pa}")
    finally:
        for s, f in conns.values():
            f.close()
            s.close()
    sup.proc.send_signal(signal.SIGTERM)
    assert sup.wait() == 0
    assert "BPERR" not in " ".join(sup.lines)


# ---------------------------------------------------------------- in-process units


@given(failures=st.integers(0, 10_000), first=st.floats(0.001, 10), cap=st.floats(0.001, 100))
def test_restart_delay_grows_and_is_capped(failures: int, first: float, cap: float) -> None:
    d = restart_delay(failures, first, cap)
    assert 0 < d <= cap
    assert restart_delay(failures + 1, first, cap) >= d
    if failures == 0:
        assert d == min(first, cap)


def test_bind_reuseport_lets_several_sockets_share_a_port() -> None:
    port = pick_free_port("127.0.0.1")
    socks = [bind_reuseport("127.0.0.1", port) for _ in range(2)]
    try:
        assert {s.getsockname()[1] for s in socks} == {port}
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in socks)
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT):
            sel = selectors.DefaultSelector()
            for s in socks:
                sel.register(s, selectors.EVENT_READ)
            assert sel.select(WAIT)  # one of them has the connection to accept
            sel.close()
    finally:
        for s in socks:
            s.close()


def test_reserved_port_is_held_but_connections_go_to_the_listeners() -> None:
    """The parent's reservation keeps other programs off the port; workers still share it."""
    reservation = reserve_port("127.0.0.1")
    port = reservation.getsockname()[1]
    listener: socket.socket | None = None
    try:
        for reuseaddr in (False, True):  # another program; asyncio servers set SO_REUSEADDR
            other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuseaddr))
            with other, pytest.raises(OSError) as taken:
                other.bind(("127.0.0.1", port))
                other.listen(8)
            assert taken.value.errno == errno.EADDRINUSE
        listener = bind_reuseport("127.0.0.1", port)  # a worker
        listener.setblocking(True)
        listener.settimeout(WAIT)
        for _ in range(20):  # every connection reaches the listening worker
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT):
                conn, _addr = listener.accept()
                conn.close()
    finally:
        reservation.close()
        if listener is not None:
            listener.close()


def test_bind_reuseport_ipv6() -> None:
    port = pick_free_port("::1")
    a, b = bind_reuseport("::1", port), bind_reuseport("::1", port)
    try:
        assert a.family == socket.AF_INET6 and b.getsockname()[1] == port
    finally:
        a.close()
        b.close()


def test_watch_parent_fires_once_on_pipe_eof() -> None:
    r, w = os.pipe()
    calls: list[int] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()
        fired = asyncio.Event()

        def cb() -> None:
            calls.append(1)
            fired.set()

        watch_parent(loop, cb, r, os.getppid())
        assert calls == []
        os.close(w)  # "the supervisor died"
        await asyncio.wait_for(fired.wait(), WAIT)

    try:
        asyncio.run(body())
    finally:
        os.close(r)
    assert calls == [1]


def test_signal_handler_only_enqueues() -> None:
    sup = Supervisor(lambda ctx: 0, 1)
    sup._wakeup._on_signal(signal.SIGTERM, None)
    assert list(sup._wakeup.queue) == [signal.SIGTERM]
    assert not sup._stopping  # nothing was done in the handler itself
    with pytest.raises(ValueError):
        Supervisor(lambda ctx: 0, 0)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(script_main(sys.argv[1:]))
