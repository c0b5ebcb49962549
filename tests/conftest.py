"""Suite-wide markers and fixtures.

``goref``: a test that needs the real Go goomerang v0.3.0 peer. ``make test``
deselects them (``-m "not goref"``); ``make interop`` builds the peer, sets
``GOREF_DIR`` (the folder holding ``refserver`` and ``refclient``) and runs
exactly them, so in CI each runs once and none is skipped. Everything under
``tests/interop/`` is ``goref``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from go_peer import goref_folder
from hypothesis import settings

# Property tests judge correctness, not speed: a loaded 2-core CI box must not turn a slow
# example into a failure (hypothesis's default per-example deadline is 200 ms).
settings.register_profile("goomerang", deadline=None)
settings.load_profile("goomerang")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "interop" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.goref)


@pytest.fixture
def goref_dir() -> Path:
    """The folder of the Go binaries, from ``GOREF_DIR``; fails (never skips) when missing."""
    return goref_folder()
