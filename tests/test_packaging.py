"""Packaging: ``pip install .`` is pure Python and needs no compiler; the compiled build is opt-in.

``setup.py`` compiles the engine's hot modules (``COMPILED``) with mypyc only
when ``GOOMERANG_COMPILE=1``; ``make unit-compiled`` runs the engine suites on
that build (``build/compiled``) and ``tests/conftest.py`` refuses to start such
a run on a pure engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import COMPILED_ENGINE, setup_module_of_the_tree

ROOT = Path(__file__).resolve().parent.parent
# the pure engine, whatever the caller set (make unit-compiled sets these)
ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith("GOOMERANG_COMPILE") and k != "PYTHONPATH"
}


def test_every_compiled_module_has_its_source() -> None:
    """What setup.py compiles exists (conftest's COMPILED_ENGINE guard reads the same lists)."""
    setup = setup_module_of_the_tree()
    compiled, accelerators = setup.COMPILED, setup.ACCELERATORS
    assert len(COMPILED_ENGINE) == len(compiled) + len(accelerators) > 0
    for name in compiled:
        assert ROOT.joinpath(*name.split(".")).with_suffix(".py").is_file()
    for name in accelerators:
        assert (ROOT / "goomerang_proto" / f"{name}.c").is_file()


@pytest.mark.timeout(120)
def test_default_wheel_is_pure_python_and_needs_no_compiler(tmp_path: Path) -> None:
    env = dict(ENV, CC="false", PIP_NO_INDEX="1")  # a compiler call would fail the build
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
            "-w", str(tmp_path), str(ROOT)]  # fmt: skip
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(tmp_path.glob("*.whl"))
    assert [w.name.endswith("-py3-none-any.whl") for w in wheels] == [True], wheels
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "goomerang_proto/connection.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c"))], names


@pytest.mark.timeout(120)
def test_sdist_carries_the_c_sources_whatever_the_build(tmp_path: Path) -> None:
    """An sdist made the ordinary way (no GOOMERANG_COMPILE) can still be compiled from."""
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,
        env=ENV,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for name in setup_module_of_the_tree().ACCELERATORS:  # type: ignore[attr-defined]
        assert f"goomerang_proto/{name}.c" in names, sorted(names)
        assert f"goomerang_proto/{name}.pyi" in names, sorted(names)  # mypyc needs the stubs


@pytest.mark.timeout(60)
def test_compile_without_mypyc_is_a_clear_error() -> None:
    script = (
        "import sys; sys.modules['mypyc'] = None; sys.modules['mypyc.build'] = None; "
        "sys.argv = ['setup.py', 'bdist_wheel']; import runpy; "
        f"runpy.run_path({str(ROOT / 'setup.py')!r}, run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=50,
        env=dict(ENV, GOOMERANG_COMPILE="1"),
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert "mypyc (the mypy package) is missing" in proc.stderr, proc.stderr


@pytest.mark.timeout(60)
def test_compile_without_a_compiler_says_what_is_missing(tmp_path: Path) -> None:
    """The C step failing (CC=false here) ends with what the compiled build needs.

    Only one C accelerator is built (setup's extension list replaced), so that
    the test does not wait for mypyc: the failure is the compiler's either way.
    """
    script = (
        "import importlib.util, sys\n"
        "from setuptools import Extension\n"
        f"spec = importlib.util.spec_from_file_location('s', {str(ROOT / 'setup.py')!r})\n"
        "setup = importlib.util.module_from_spec(spec); spec.loader.exec_module(setup)\n"
        "setup.compiled_extensions = lambda: [Extension('goomerang_proto._alloc', "
        "['goomerang_proto/_alloc.c'])]\n"
        f"sys.argv = ['setup.py', '-q', 'build_ext', '--build-temp', {str(tmp_path / 't')!r}, "
        f"'--build-lib', {str(tmp_path / 'l')!r}]\n"
        "setup._main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=50,
        env=dict(ENV, GOOMERANG_COMPILE="1", CC="false"),
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert "needs a C compiler and the Python headers" in proc.stderr, proc.stderr
    assert not list(tmp_path.glob("l/**/*.so"))


@pytest.mark.timeout(60)
def test_a_compiled_run_refuses_a_pure_engine() -> None:
    target = ROOT / "tests" / "test_packaging.py::test_every_compiled_module_has_its_source"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", str(target)],
        capture_output=True,
        text=True,
        timeout=50,
        env=dict(ENV, GOOMERANG_COMPILED="1", PYTHONSAFEPATH="1"),
        cwd=ROOT,
    )
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "is pure Python: build with `make compiled`" in proc.stderr, proc.stderr
