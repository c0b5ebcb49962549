"""Build the mypyc-compiled engine beside the pure package: ``make compiled``.

usage: build_compiled.py [DEST]        (default: build/compiled)

DEST/goomerang_proto becomes a copy of the package in which the modules of
``setup.COMPILED`` are C extensions (plus the shared ``goomerang_proto__mypyc``
library in DEST) and the C accelerators of ``setup.ACCELERATORS`` are built;
run anything with ``PYTHONPATH=DEST`` to use it (an extension module wins
over the ``.py`` beside it). The pure package in the
working tree is untouched, so the editable install stays pure Python. Needs a
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


def _stamp() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "goomerang_proto").rglob("*")):
        if path.is_file() and path.suffix in (".py", ".pyi", ".typed", ".c"):
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
    shutil.copytree(
        ROOT / "goomerang_proto",
        dest / "goomerang_proto",
        ignore=shutil.ignore_patterns("__pycache__", "*.so"),
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
    built = (*COMPILED, *ACCELERATORS)
    missing = [m for m in built if not list((dest / "goomerang_proto").glob(f"{m}.*.so"))]
    if missing:
        raise SystemExit(f"build_compiled: no extension built for {missing}")
    stamp_file.write_text(stamp)
    print(f"build_compiled: {', '.join(built)} compiled into {dest}/goomerang_proto")


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "compiled")
