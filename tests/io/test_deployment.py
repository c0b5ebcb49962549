"""Safe deployment (issue 16, inputs 5, 6, 12): ports, workers, enums, signals, temp files."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from threaded import ThreadedServer
from util import new_server, run

from goomerang_io import Server
from goomerang_proto import Status

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_server_on_a_port_in_use_fails_at_start_input_5(workers: int) -> None:
    """The first server binds with SO_REUSEPORT, as every multi-worker server does."""
    with ThreadedServer(reuse_port=True) as first:
        second = Server(first.addr, workers=workers)
        with pytest.raises(OSError) as info:
            second.run()  # fails before forking or serving anything
        assert info.value.errno == errno.EADDRINUSE
        assert "in use" in str(info.value)


@pytest.mark.parametrize(
    ("workers", "exc"),
    [(0, ValueError), (-3, ValueError), ("2", TypeError), (True, TypeError), (1.5, TypeError)],
)
def test_workers_is_validated_input_6(workers: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc, match="workers"):
        Server("127.0.0.1:0", workers=workers)


def test_async_with_a_multi_worker_server_says_what_to_call_input_6() -> None:
    async def main() -> None:
        server = Server("127.0.0.1:0", workers=2)
        with pytest.raises(ValueError, match=r"server\.run\(\)"):
            async with server:
                raise AssertionError("served in one process")
        assert server.status is Status.NEW

    run(main())


def test_enums_print_their_names_input_12() -> None:
    assert f"{Status.RUNNING}" == "RUNNING"
    assert str(Status.CLOSED) == "CLOSED"
    server = new_server()
    assert f"status {server.status}" == "status NEW"


SCRIPT = """
import logging, os, sys
from goomerang_io import Server
from goomerang_io.metrics import ServerMetrics, prepare_multiprocess_dir

logging.basicConfig(level=logging.INFO, format="%(message)s")
out = sys.argv[1]
prepare_multiprocess_dir()
server = Server("127.0.0.1:0", workers=int(sys.argv[2]), metrics=ServerMetrics())
mark = lambda what, i: open(os.path.join(out, f"{what}-{i}-{os.getpid()}"), "w").close()
server.on_process_stop(lambda i: mark("stopped", i))
server.on_process_start(lambda i: mark("started", i))
sys.exit(server.run())
"""


def run_and_signal(
    tmp_path: Path, sig: int, kill_one_first: bool = False, workers: int = 2
) -> tuple[int, str, list[str]]:
    """Start a 2-worker server in its own process group, signal the whole group, wait.

    With ``kill_one_first`` a worker is SIGKILLed first and its restart awaited.
    """
    script = tmp_path / "serve.py"
    script.write_text(SCRIPT)
    tmp = tmp_path / "tmp"
    out = tmp_path / "out"
    tmp.mkdir()
    out.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(ROOT))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as under systemd or a shell
    )
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:  # bounded by the test timeout
            lines.append(line)
            if "listening on" in line:
                break
        assert any("listening on" in line for line in lines), lines
        if kill_one_first:
            victim = int(
                next(f for f in os.listdir(out) if f.startswith("started-0-")).split("-")[2]
            )
            os.kill(victim, signal.SIGKILL)
            for line in proc.stdout:  # the supervisor reports the death, then restarts it
                lines.append(line)
                if "worker 0" in line and "ready" in line:
                    break
        os.killpg(proc.pid, sig)
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    rest = proc.stdout.read()
    return code, "".join(lines) + rest, sorted(os.listdir(tmp)) + sorted(os.listdir(out))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_process_group_signal_is_a_graceful_stop_input_12_16(tmp_path: Path, sig: int) -> None:
    code, output, files = run_and_signal(tmp_path, sig)
    assert code == 0, output
    assert "exited with code" not in output, output  # no worker died by the signal
    stopped = [f for f in files if f.startswith("stopped-")]
    assert sorted(f.split("-")[1] for f in stopped) == ["0", "1"], (files, output)
    leftovers = [f for f in files if not f.startswith(("stopped-", "started-"))]
    assert leftovers == [], leftovers  # no goomerang-metrics-* nor hub directory left
    assert output.count("listening on") == 1


def test_one_process_runs_the_process_hooks_as_worker_0(tmp_path: Path) -> None:
    """workers=1 behaves as one worker: on_process_start/stop run with index 0 (review)."""
    code, output, files = run_and_signal(tmp_path, signal.SIGTERM, workers=1)
    assert code == 0, output
    hooks = sorted(f.split("-")[0] + "-" + f.split("-")[1] for f in files if "-" in f)
    assert hooks == ["started-0", "stopped-0"], (files, output)


def test_a_worker_death_is_reported_once_and_the_worker_restarted_input_12(tmp_path: Path) -> None:
    code, output, files = run_and_signal(tmp_path, signal.SIGTERM, kill_one_first=True)
    assert code == 0, output
    deaths = [line for line in output.splitlines() if "exited with" in line]
    assert len(deaths) == 1 and "-9" in deaths[0], output
    assert len([f for f in files if f.startswith("started-0-")]) == 2  # restarted
