"""Suite-wide markers and fixtures.

``goref``: a test that needs the real Go goomerang v0.3.0 peer. ``make test``
deselects them (``-m "not goref"``); ``make interop`` builds the peer, sets
``GOREF_DIR`` (the folder holding ``refserver`` and ``refclient``) and runs
exactly them, so in CI each runs once and none is skipped. Everything under
``tests/interop/`` is ``goref``.

``pure_python``: a test that replaces a method or module global of a compiled
module (monkeypatch, or assigning over a connection's method). The compiled build
(``make compiled``: mypyc C extensions) cannot run it: compiled code calls compiled
methods and reads Final module names directly, so a replacement on the class or the
module is accepted by Python but never seen, and the engine's instance attributes
are read-only; ``make unit-compiled`` deselects exactly
these (``-m "not pure_python"``) and runs them nowhere else, while the pure
run (``make unit``) runs them. With ``GOOMERANG_COMPILED=1`` (set by ``make
unit-compiled``) the session refuses to start unless every compiled module
(``setup.COMPILED``) really is imported from a C extension. The ``pure_python``
tests: ``kit/test_pair.py``'s two timer tests (assign over a connection's
``get_timer``/``handle_timer``: read-only on a compiled instance),
``proto/test_fuzz_targets.py::test_targets_catch_what_they_promise`` (patches
``ServerConnection._on_frames``: compiled callers would not see the patch) and
``proto/test_golden_session.py::test_client_replays_the_go_client_byte_for_byte``
(patches the ``os`` global of ``frames``: compiled code keeps its own reference)
and ``io/test_fanout.py::test_fanouts_from_one_read_reach_each_target_in_one_write``
(counts reads by patching ``ServerConnection.receive_data``).

``compiled_only``: a test of the compiled build's hand-written C accelerators
(``setup.ACCELERATORS``: ``proto/test_mask_accel.py``, ``test_timestamp_accel.py``,
``test_alloc_accel.py``). The pure run deselects
them (``make unit``'s ``-m``, and this file when run without it); ``make
unit-compiled`` runs them, and refuses to start unless ``_mask`` is the C module.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

import pytest
from go_peer import goref_folder
from hypothesis import settings

# Property tests judge correctness, not speed: a loaded 2-core CI box must not turn a slow
# example into a failure (hypothesis's default per-example deadline is 200 ms).
settings.register_profile("goomerang", deadline=None)
settings.load_profile("goomerang")


ROOT = Path(__file__).resolve().parent.parent


def setup_module_of_the_tree() -> Any:
    """The tree's ``setup.py`` as a module: its lists only (``setup()`` runs as __main__ only)."""
    spec = importlib.util.spec_from_file_location("goomerang_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SETUP = setup_module_of_the_tree()
COMPILED_ENGINE: tuple[str, ...] = (
    *_SETUP.COMPILED,
    *(f"goomerang_proto.{name}" for name in _SETUP.ACCELERATORS),  # C, compiled build only
)
"""Every module a compiled build turns into a C extension (setup.py's lists)."""


def _is_extension(name: str) -> bool:
    """True when module ``name`` is imported from a C extension (False: pure or absent)."""
    try:
        module = importlib.import_module(name)
    except ImportError:  # an accelerator has no pure twin: absent in a pure tree
        return False
    return str(module.__file__).endswith(tuple(EXTENSION_SUFFIXES))


def pytest_configure(config: pytest.Config) -> None:
    if _compiled_run():
        pure = [name for name in COMPILED_ENGINE if not _is_extension(name)]
        if pure:
            raise pytest.UsageError(
                f"GOOMERANG_COMPILED=1 but {pure[0]} (and {len(pure) - 1} more) "
                "is pure Python: build with `make compiled`, run with PYTHONPATH=build/compiled"
            )


def _compiled_run() -> bool:
    return os.environ.get("GOOMERANG_COMPILED", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "interop" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.goref)
    if importlib.util.find_spec("goomerang_proto._mask") is None:
        # compiled_only tests need the C accelerators: a run without them deselects them
        # (reported as deselected, as `make unit`'s -m does); `make unit-compiled`, or any
        # run with the compiled build first on the path, runs them.
        kept = [item for item in items if item.get_closest_marker("compiled_only") is None]
        if len(kept) != len(items):
            config.hook.pytest_deselected(items=[i for i in items if i not in kept])
            items[:] = kept


@pytest.fixture
def goref_dir() -> Path:
    """The folder of the Go binaries, from ``GOREF_DIR``; fails (never skips) when missing."""
    return goref_folder()
