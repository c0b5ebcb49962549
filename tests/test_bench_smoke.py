"""Smoke test of the benchmark harness: build gmrload, run the floor rows once, read the table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

from gmrbuild import ensure_gmrload, find_cc  # noqa: E402

needs_cc = pytest.mark.skipif(
    find_cc() is None, reason="no C compiler found (cc/gcc/clang): gmrload cannot be built"
)


@needs_cc
@pytest.mark.timeout(60)
def test_gmrload_builds_and_is_reused() -> None:
    binary = ensure_gmrload()
    assert binary.exists() and binary.stat().st_mode & 0o111
    mtime = binary.stat().st_mtime_ns
    assert ensure_gmrload() == binary
    assert binary.stat().st_mtime_ns == mtime  # up to date: not rebuilt


@needs_cc
@pytest.mark.timeout(90)
def test_quick_floor_run_prints_a_numeric_table(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run_all.py"),
            "--quick",
            "--only",
            "floor,pipe,rr",
            "--quiet",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=80,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if " floor " in f" {line} "]
    assert rows, proc.stdout
    pipe = next(line for line in rows if line.startswith("1 pipelined echo"))
    value = re.search(r"([\d,]+)\s+msg/s", pipe)
    assert value is not None and int(value.group(1).replace(",", "")) > 0, pipe
    assert "1.00x" in pipe
    rr = next(line for line in rows if line.startswith("2 sync rr same core"))
    p50 = re.search(r"msg/s\s+([\d.,]+)\s+([\d.,]+)", rr)
    assert p50 is not None and float(p50.group(1).replace(",", "")) > 0, rr
    assert list(tmp_path.glob("run-*.json")), "raw results file missing"


@pytest.mark.timeout(60)
def test_client_benchmark_runs_and_reports_every_client() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "client.py"), "-n", "2000", "--reps", "1"],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    block = proc.stdout.split("clients against the go server")[0]
    assert block.startswith("clients against the goomerang server"), proc.stdout
    rates = re.findall(r"^\s+(.+?)\s{2,}([\d,]+)$", block, re.MULTILINE)
    ours = [name for name, _ in rates if not name.startswith("go ")]
    assert ours == [
        "asyncio send+echo msg/s",
        "asyncio send_sync sequential req/s",
        "asyncio send_sync 200 in flight req/s",
        "blocking send_sync sequential req/s",
    ], proc.stdout
    assert all(int(value.replace(",", "")) > 0 for _, value in rates)
    go = [name for name, _ in rates if name.startswith("go ")]
    assert len(go) == 2 or "go refclient: n/a" in proc.stdout, proc.stdout


def test_go_reference_is_found_only_where_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--goref/GOREF_DIR: a folder without refserver is an error, not a silently missing row."""
    from goref import find_goref
    from procs import READY

    with pytest.raises(FileNotFoundError, match="refserver"):
        find_goref(str(tmp_path))  # named on the command line: must be there
    monkeypatch.setenv("GOREF_DIR", str(tmp_path / "bin"))
    if not (ROOT / ".goref" / "bin" / "refserver").exists():
        assert find_goref() is None  # exported by make whether built or not: n/a
    (tmp_path / "bin").mkdir()
    server = tmp_path / "bin" / "refserver"
    server.write_text("#!/bin/sh\n")
    server.chmod(0o755)
    assert find_goref(str(tmp_path)) == tmp_path / "bin"
    assert find_goref() == tmp_path / "bin"  # GOREF_DIR
    ready = READY.search("READY 127.0.0.1:41234")  # what the Go refserver prints
    assert ready is not None and ready.group(2) == "41234"
    ours = READY.search("goomerang: listening on ws://127.0.0.1:8080/ws")
    assert ours is not None and ours.group(2) == "8080"


@pytest.mark.timeout(60)
def test_instruction_paths_run_in_process_and_process_every_message() -> None:
    """benchmarks/instructions.py's eight paths, without valgrind: every message is checked."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / "instructions.py"), "--no-valgrind", "-n", "40"],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    processed = dict(re.findall(r"^(\S+) .* processed \[(\d+, \d+, \d+)\]$", proc.stdout, re.M))
    want = ["bcast", "client", "floor", "pipe", "pipe+metrics", "rr", "rr+metrics", "rr+metrics-mp"]
    assert sorted(processed) == want, proc.stdout
    for path, counts in processed.items():
        warmup, n, n2 = (int(c) for c in counts.split(", "))
        assert warmup > 0 and (n, n2) == (40, 80), (path, counts)


@pytest.mark.timeout(60)
def test_instruction_call_counts_per_message() -> None:
    """--calls counts the calls of one request per read: data_received once per request."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / "instructions.py"), "--calls", "--paths", "rr", "-n", "30"],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    head = re.search(r"^rr: .*: ([\d.]+) Python calls, ([\d.]+) C calls", proc.stdout, re.M)
    assert head is not None and float(head.group(1)) > 5, proc.stdout
    received = re.search(r"^\s+([\d.]+)\s+\S+:\S*data_received$", proc.stdout, re.M)
    assert received is not None and float(received.group(1)) == 1.0, proc.stdout
