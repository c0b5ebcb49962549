"""Where the Go goomerang v0.3.0 peer lives for the tests that need it (`make goref`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def goref_folder() -> Path:
    """The folder holding ``refserver`` and ``refclient``, from ``GOREF_DIR``.

    Fails the calling test (never skips) when the variable is unset or the
    folder lacks an executable: ``make interop`` builds the peer and sets it.
    """
    value = os.environ.get("GOREF_DIR")
    if not value:
        pytest.fail("GOREF_DIR is not set: run `make interop` (it builds the Go peer and sets it)")
    path = Path(value)
    for name in ("refserver", "refclient"):
        binary = path / name
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            pytest.fail(f"GOREF_DIR={value}: no executable {name} there (run `make goref`)")
    return path
