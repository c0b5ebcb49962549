"""examples/chat_server.py runs: TLS (a certificate made here), auth, rooms, history, metrics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "io"))

from test_tls import make_cert  # noqa: E402


@pytest.mark.timeout(60)
def test_the_chat_example_runs(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "chat_server.py"),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--ca",
            str(cert),
        ],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=ROOT,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "bob received: alice: hello" in out
    assert "history: ['alice: hello']" in out
    assert "forged publish refused: True" in out
    assert "wrong token: 401" in out
    assert "metrics without token: 401 with token: 200" in out
