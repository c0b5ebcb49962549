"""docs/conformance/README.md lists every server case with its title."""

from __future__ import annotations

from pathlib import Path

from goomerang_io.conformance.suite import CASES

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance" / "README.md"


def test_every_case_is_documented() -> None:
    text = DOC.read_text()
    missing = [c.id for c in CASES.values() if f"| {c.id} | {c.title} |" not in text]
    assert not missing, f"regenerate the case table in {DOC}: {missing}"
