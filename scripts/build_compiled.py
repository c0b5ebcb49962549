"""Build the mypyc-compiled engine beside the pure package: ``make compiled``.

usage: build_compiled.py [DEST]        (default: build/compiled)

DEST/goomerang_proto and DEST/goomerang_io become copies of the packages in
which the modules of ``setup.COMPILED`` are C extensions (plus the shared
``goomerang_proto__mypyc`` library in DEST) and the C accelerators of
``setup.ACCELERATORS`` are built; run anything with ``PYTHONPATH=DEST`` to use
it (an extension module wins over the ``.py`` beside it). The pure packages in the
working tree are untouched, so the editable install stays pure Python. Needs a
C compiler and the Python headers (``scripts/ensure-cc.sh``) and mypy (the dev
venv has it). Rebuilds only when a source file changed (a stamp of their hashes).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from setup import ACCELERATORS, COMPILED, compiled_extensions  # noqa: E402

PACKAGES = ("goomerang_proto", "goomerang_io")
"""Copied whole into DEST: the compiled modules of both, and everything beside them."""


def _stamp() -> str:
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".so":
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    digest.update((ROOT / "setup.py").read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def build(dest: Path) -> None:
    """(Re)build DEST unless its stamp says it is up to date."""
    stamp_file = dest / ".stamp"
    stamp = _stamp()
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        print(f"build_compiled: {dest} is up to date")
        return
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "*.so")
        )
    from setuptools import setup

    cwd = os.getcwd()
    os.chdir(dest)
    try:
        setup(
            name="goomerang-compiled-engine",
            ext_modules=compiled_extensions("."),
            script_args=["-q", "build_ext", "--inplace", "--build-temp", "_temp"],
        )
    finally:
        os.chdir(cwd)
    shutil.rmtree(dest / "_temp", ignore_errors=True)
    shutil.rmtree(dest / "build", ignore_errors=True)
    built = (*COMPILED, *(f"goomerang_proto.{name}" for name in ACCELERATORS))
    missing = [m for m in built if not list(dest.joinpath(*m.split(".")).parent.glob(
        m.rsplit(".", 1)[1] + ".*.so"))]  # fmt: skip
    if missing:
        raise SystemExit(f"build_compiled: no extension built for {missing}")
    stamp_file.write_text(stamp)
    print(f"build_compiled: {', '.join(built)} compiled into {dest}")


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "compiled")
