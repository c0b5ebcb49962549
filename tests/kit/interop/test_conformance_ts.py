"""The TypeScript client (Node) through the conformance client profile: `make kit-interop`.

Needs Node 20+ and the built client (`make ts-build`, a dependency of kit-interop);
without them the test fails saying what is missing, it never skips.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from goomerang_io.conformance.client_mode import run_client_suite

ROOT = Path(__file__).resolve().parents[3]
TS = ROOT / "clients" / "typescript"


@pytest.mark.timeout(120)
def test_typescript_client_follows_the_client_profile() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the TypeScript client needs Node 20+")
    if not (TS / "dist" / "index.js").exists() or not (TS / "node_modules").exists():
        pytest.fail("the TypeScript client is not built: run `make ts-build`")
    report = run_client_suite([node, str(TS / "scripts" / "conformance-profile.mjs")])
    assert {r.status for r in report.results} == {"OK"}, [
        (r.id, r.summary, r.details) for r in report.results
    ]
