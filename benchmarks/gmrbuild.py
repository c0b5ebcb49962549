"""Build the gmrload load generator from the source the project carries.

``ensure_gmrload()`` compiles ``benchmarks/gmrload/gmrload.c`` with the system
C compiler (``cc -O2``) into ``benchmarks/bin/gmrload`` (an ignored folder)
when the binary is missing or stale. Staleness is decided by a stamp file
holding the SHA-256 of the source and the compiler command, so a checkout
with fresh mtimes does not rebuild needlessly and an edited source always
does. The binary is written to a temporary name and renamed into place, so
two harnesses building at once never run a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "gmrload" / "gmrload.c"
BIN_DIR = HERE / "bin"
BINARY = BIN_DIR / "gmrload"
STAMP = BIN_DIR / "gmrload.stamp"
CFLAGS = ("-O2",)


class BuildError(RuntimeError):
    """gmrload could not be compiled (no C compiler, or the compiler failed)."""


def find_cc() -> str | None:
    """Path of the system C compiler (``$CC``, then ``cc``, ``gcc``, ``clang``), or None."""
    candidates = [os.environ.get("CC", ""), "cc", "gcc", "clang"]
    for name in candidates:
        if name:
            path = shutil.which(name)
            if path:
                return path
    return None


def _stamp_text(cc: str) -> str:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    return f"{digest} {cc} {' '.join(CFLAGS)}\n"


def ensure_gmrload(verbose: bool = False) -> Path:
    """Return the path of an up-to-date gmrload binary, compiling it if needed."""
    cc = find_cc()
    if cc is None:
        raise BuildError("no C compiler found (set $CC or install cc/gcc/clang)")
    wanted = _stamp_text(cc)
    if BINARY.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return BINARY
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    tmp = BIN_DIR / f"gmrload.tmp.{os.getpid()}"
    cmd = [cc, *CFLAGS, "-o", str(tmp), str(SOURCE)]
    if verbose:
        print("building gmrload:", " ".join(cmd), file=sys.stderr)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{cc} took over 120 s to compile {SOURCE}") from exc
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    os.replace(tmp, BINARY)
    stamp_tmp = BIN_DIR / f"gmrload.stamp.tmp.{os.getpid()}"
    stamp_tmp.write_text(wanted)
    os.replace(stamp_tmp, STAMP)
    return BINARY


if __name__ == "__main__":
    print(ensure_gmrload(verbose=True))
