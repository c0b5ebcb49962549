"""Where the Go goomerang v0.3.0 reference build is (``refserver``, ``refclient``), if anywhere.

The Go peer is built by ``make goref`` into ``.goref/bin`` (or by
``tools/goref/build.sh DIR`` into ``DIR/bin``; as root, from Debian's Go
packages). The benchmarks use it when it has been built: ``--goref DIR``
(the build folder or its ``bin``), else the folder ``GOREF_DIR`` names (the
project's convention: the folder that holds the binaries), else
``.goref/bin``.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOW = (
    "the Go server is not built: `make goref` (as root) builds it into .goref/, or "
    "tools/goref/build.sh DIR; then pass --goref DIR or set GOREF_DIR=DIR/bin"
)


def _holds_refserver(folder: Path) -> bool:
    server = folder / "refserver"
    return server.is_file() and os.access(server, os.X_OK)


def find_goref(given: str | None = None) -> Path | None:
    """The folder holding ``refserver`` and ``refclient``, or None when there is none.

    ``given`` (``--goref``) may name the build folder or its ``bin``; a named
    folder without an executable ``refserver`` raises FileNotFoundError (a
    typo must not silently drop the row). ``GOREF_DIR`` (which the Makefile
    always exports, as ``.goref/bin``, built or not) and ``.goref/`` are used
    when they hold a build; otherwise None, and the caller prints ``HOW``.
    """
    if given:
        for folder in (Path(given) / "bin", Path(given)):
            if _holds_refserver(folder):
                return folder
        raise FileNotFoundError(f"no executable refserver in {given} or {given}/bin ({HOW})")
    env = os.environ.get("GOREF_DIR")
    for folder in ([Path(env)] if env else []) + [ROOT / ".goref" / "bin"]:
        if _holds_refserver(folder):
            return folder
    return None
