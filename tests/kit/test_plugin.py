"""The pytest plugin loads everywhere: it must import nothing optional at load time."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

from goomerang_io.testing import plugin


def test_plugin_is_registered_under_pytest11() -> None:
    names = {e.name: e.value for e in importlib.metadata.entry_points(group="pytest11")}
    assert names.get("goomerang") == "goomerang_io.testing.plugin"


def test_plugin_import_pulls_in_no_optional_module() -> None:
    code = textwrap.dedent(
        """
        import sys
        import goomerang_io.testing.plugin
        print([m for m in ("hypothesis", "trio", "matplotlib") if m in sys.modules])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_plugin_module_imports_only_pytest_and_the_stdlib_at_top_level() -> None:
    """Fixtures import what they need when used: a plain pytest run pays nothing for them."""
    tree = ast.parse(Path(plugin.__file__).read_text())
    top: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            top.add(node.module)
    assert top <= {"__future__", "collections.abc", "typing", "pytest"}, top


def test_engine_testing_package_imports_without_hypothesis(tmp_path: Path) -> None:
    """``goomerang_proto.testing`` (the Pair) works where hypothesis is not installed."""
    blocker = tmp_path / "hypothesis.py"
    blocker.write_text("raise ImportError('hypothesis is not installed here')\n")
    code = "import goomerang_proto.testing as t; p = t.Pair(); print(p.client.status.name)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip() == "RUNNING", out.stderr
