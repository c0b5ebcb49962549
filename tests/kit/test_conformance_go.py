"""The kit against the Go goomerang v0.3.0 reference peer (``goref`` tests).

``make test`` deselects them; ``make interop`` (and ``make kit-interop``) runs them with
``GOREF_DIR`` set; the ``goref_dir`` fixture fails, never skips, when it is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kit_helpers import statuses

from goomerang_io.conformance.client_mode import run_client_suite
from goomerang_io.conformance.runner import run_server_suite
from goomerang_io.conformance.target import Target

pytestmark = pytest.mark.goref

# The Go server's verdicts that are not OK; docs/conformance/go-v0.3.0-notes.json explains each.
GO_SERVER_NOT_OK = {
    "1.5": "INFORMATIONAL",  # 400 instead of 426 for an unsupported version
    "1.8": "FAILED",  # two Sec-WebSocket-Key headers accepted
    "1.9": "INFORMATIONAL",  # no limit on a 64 KiB request head
    "7.3": "INFORMATIONAL",  # no message size limit
    "8.7": "FAILED",  # invalid UTF-8 in a text message not detected
    "8.9": "INFORMATIONAL",  # invalid UTF-8 close reason answered 1002, not 1007
    "8.11": "INFORMATIONAL",  # a 1 TiB frame header: waits for the bytes (no limit)
    "10.1": "INFORMATIONAL",  # never times out a silent peer
}


@pytest.mark.timeout(120)
def test_go_reference_server(goref_dir: Path) -> None:
    target = Target(command=[str(goref_dir / "refserver"), "-addr", "{addr}"])
    try:
        report = run_server_suite(target)
    finally:
        target.close()
    got = statuses(report)
    differs = {
        cid: (status, next(r.summary for r in report.results if r.id == cid))
        for cid, status in got.items()
        if status != GO_SERVER_NOT_OK.get(cid, "OK")
    }
    assert not differs, differs


@pytest.mark.timeout(120)
def test_go_reference_client_follows_the_client_profile(goref_dir: Path) -> None:
    refclient = str(goref_dir / "refclient")
    command = [refclient, "{task}", "-addr", "{addr}", "-n", "{n}", "-topic", "{topic}"]
    command += ["-clients", "{clients}", "-size", "{size}"]
    report = run_client_suite(command)
    assert set(statuses(report).values()) == {"OK"}, [
        (r.id, r.summary, r.details) for r in report.results
    ]
