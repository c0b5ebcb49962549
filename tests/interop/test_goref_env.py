"""``GOREF_DIR`` unset or broken fails the interop tests (they never skip); set right, it runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from goref_peers import goref_dir


def test_unset_goref_dir_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOREF_DIR", raising=False)
    with pytest.raises(pytest.fail.Exception, match="GOREF_DIR is not set"):
        goref_dir()


def test_goref_dir_without_binaries_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "refserver").write_text("not executable")
    monkeypatch.setenv("GOREF_DIR", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="no executable refserver"):
        goref_dir()


def test_goref_dir_holds_the_go_peer() -> None:
    usage = subprocess.run(
        [str(goref_dir() / "refclient")], capture_output=True, text=True, timeout=10
    )
    assert usage.returncode == 2 and "usage: refclient" in usage.stderr
