"""The kit against the Go goomerang v0.3.0 reference peer (runs when GOREF_DIR is set).

`make kit-interop GOREF_DIR=DIR` (DIR from ../shared/tools/goref/build.sh DIR).
"""

from __future__ import annotations

import pytest
from conftest import goref_bin, statuses

from goomerang_io.conformance.client_mode import run_client_suite
from goomerang_io.conformance.runner import run_server_suite
from goomerang_io.conformance.target import Target

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
