"""Where the Go goomerang v0.3.0 reference build is (``refserver``, ``refclient``), if anywhere.

The Go peer is built by ``tools/goref/build.sh DIR`` (shared tools of this
project; as root, from Debian's Go packages) into ``DIR/bin``. The benchmarks
use it when it has been built and they are told where: ``--goref DIR``, or
the environment variable ``GOREF_DIR``, or ``.goref/`` at the repository root
(``build.sh``'s default output when run from there). ``DIR`` may also be the
``bin`` folder itself.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOW = (
    "the Go server is not built: build it with tools/goref/build.sh DIR (as root) and pass "
    "--goref DIR or set GOREF_DIR=DIR"
)


def find_goref(given: str | None = None) -> Path | None:
    """The folder holding ``refserver`` and ``refclient``, or None when there is none.

    Raises FileNotFoundError when a folder was named (argument or GOREF_DIR)
    but holds no executable ``refserver``: a typo must not silently drop the row.
    """
    named = given or os.environ.get("GOREF_DIR") or None
    candidates = [Path(named)] if named else [ROOT / ".goref"]
    for base in candidates:
        for folder in (base / "bin", base):
            server = folder / "refserver"
            if server.is_file() and os.access(server, os.X_OK):
                return folder
    if named:
        raise FileNotFoundError(f"no executable refserver in {named} or {named}/bin ({HOW})")
    return None
