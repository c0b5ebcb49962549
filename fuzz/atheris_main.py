"""What every fuzz target runs as a script: atheris on its ``test_one_input``.

A target ends with ``if __name__ == "__main__": fuzz(test_one_input)`` after
``from atheris_main import fuzz`` inside that block (the script's folder is on
the path then; the pytest suite loads targets by file and never runs it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def fuzz(test_one_input: Callable[[bytes], None]) -> None:
    """Instrument every module, then fuzz ``test_one_input`` with ``sys.argv``'s options."""
    import atheris  # type: ignore[import-untyped]

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
