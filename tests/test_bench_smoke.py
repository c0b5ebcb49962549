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
def test_client_benchmark_runs_and_reports_three_rates() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "client.py"), "-n", "2000", "--reps", "1"],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rates = re.findall(r"^\s+(.+?)\s{2,}([\d,]+)$", proc.stdout, re.MULTILINE)
    assert [name for name, _ in rates] == [
        "async send+echo msg/s",
        "send_sync sequential req/s",
        "send_sync 200 in flight req/s",
    ], proc.stdout
    assert all(int(value.replace(",", "")) > 0 for _, value in rates)
