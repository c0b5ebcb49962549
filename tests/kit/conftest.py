"""Shared helpers of the kit's tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from goomerang_io.conformance.runner import Report

SERVE = [sys.executable, "-m", "goomerang_io", "serve", "--listen", "{addr}"]
PROFILES = "goomerang_io.conformance.profiles"


def statuses(report: Report) -> dict[str, str]:
    """Case id -> verdict."""
    return {r.id: r.status for r in report.results}


def goref_bin(name: str) -> Path:
    """A Go reference binary from $GOREF_DIR (DIR/bin/NAME or DIR/NAME); skip without it."""
    root = os.environ.get("GOREF_DIR")
    if not root:
        pytest.skip("GOREF_DIR is not set: `make kit-interop GOREF_DIR=...` runs the Go cases")
    for path in (Path(root) / "bin" / name, Path(root) / name):
        if path.exists():
            return path
    pytest.fail(f"GOREF_DIR={root} has no {name}: build it with ../shared/tools/goref/build.sh")
