"""The public API is typed: mypy --strict reports the incorrect uses in cases.py, and only them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).with_name("cases.py")


@pytest.mark.timeout(240)
def test_mypy_reports_exactly_the_incorrect_uses() -> None:
    expected = {
        number
        for number, line in enumerate(CASES.read_text().splitlines(), start=1)
        if line.rstrip().endswith("# error")
    }
    assert len(expected) >= 8
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            str(CASES),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=220,
    )
    reported: dict[int, list[str]] = {}
    for line in proc.stdout.splitlines():
        found = re.match(rf"{re.escape(str(CASES.relative_to(ROOT)))}:(\d+): error: (.*)", line)
        if found:
            reported.setdefault(int(found[1]), []).append(found[2])
    missing = sorted(expected - set(reported))
    unexpected = {n: reported[n] for n in sorted(set(reported) - expected)}
    assert missing == [], f"not reported: lines {missing}\n{proc.stdout}{proc.stderr}"
    assert unexpected == {}, f"reported on correct lines: {unexpected}"
