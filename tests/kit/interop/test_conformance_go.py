"""The kit against the Go goomerang v0.3.0 reference peer: `make kit-interop`.

The folder of ``refserver`` and ``refclient`` comes from ``GOREF_DIR`` (the Makefile
builds it with scripts/goref.sh); unset or broken, these tests fail, they never skip.
Like tests/interop, this folder is left out of `make test` (norecursedirs: interop).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from goomerang_io.conformance.client_mode import run_client_suite
from goomerang_io.conformance.runner import Report, run_server_suite
from goomerang_io.conformance.target import Target


def goref_bin(name: str) -> Path:
    """``$GOREF_DIR/NAME`` (or ``$GOREF_DIR/bin/NAME``); fails the test when missing."""
    root = os.environ.get("GOREF_DIR")
    if not root:
        pytest.fail("GOREF_DIR is not set: run `make kit-interop` (it builds the Go peer)")
    for path in (Path(root) / name, Path(root) / "bin" / name):
        if path.is_file() and os.access(path, os.X_OK):
            return path
    pytest.fail(f"GOREF_DIR={root}: no executable {name} there (run scripts/goref.sh)")


def statuses(report: Report) -> dict[str, str]:
    """Case id -> verdict."""
    return {r.id: r.status for r in report.results}


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
def test_go_reference_server() -> None:
    target = Target(command=[str(goref_bin("refserver")), "-addr", "{addr}"])
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
def test_go_reference_client_follows_the_client_profile() -> None:
    refclient = str(goref_bin("refclient"))
    command = [refclient, "{task}", "-addr", "{addr}", "-n", "{n}", "-topic", "{topic}"]
    command += ["-clients", "{clients}", "-size", "{size}"]
    report = run_client_suite(command)
    assert set(statuses(report).values()) == {"OK"}, [
        (r.id, r.summary, r.details) for r in report.results
    ]
