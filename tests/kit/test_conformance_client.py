"""`goomerang conformance client`: our clients pass; programs off the profile fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from kit_helpers import PROFILES, statuses

from goomerang_io.conformance.client_mode import run_client_suite

ALL_OK = {i: "OK" for i in ("1.1", "2.1", "2.2", "2.3", "2.4", "3.1", "3.2")}


@pytest.mark.parametrize(
    "program", ["asyncio_client", "uvloop_client", "sync_client", "trio_client"]
)
def test_our_clients_follow_the_profile(program: str) -> None:
    report = run_client_suite([sys.executable, "-m", f"{PROFILES}.{program}"])
    assert statuses(report) == ALL_OK, [(r.id, r.summary, r.details) for r in report.results]


def test_a_program_that_never_connects_fails_everything() -> None:
    report = run_client_suite([sys.executable, "-c", "raise SystemExit(3)"], only=["2.1", "3.1"])
    got = statuses(report)
    assert got == {"1.1": "FAILED", "2.1": "FAILED", "3.1": "FAILED"}
    assert "exit status 3" in report.results[1].summary


def test_a_program_that_sends_too_little_fails_with_the_count() -> None:
    command = ["env", "GOOMERANG_N=9", sys.executable, "-m", f"{PROFILES}.asyncio_client"]
    report = run_client_suite(command, only=["send"])
    result = report.results[1]
    assert (result.id, result.status) == ("2.1", "FAILED")
    assert result.summary == "9 async MessageV1 received, expected 10"


def test_replies_out_of_order_catch_a_client_that_ignores_the_uuid() -> None:
    program = Path(__file__).with_name("order_bound_client.py")
    report = run_client_suite([sys.executable, str(program)], only=["sync"])
    result = report.results[1]
    assert (result.id, result.status) == ("2.2", "FAILED"), result
    assert result.summary in ("exit status 1", "the program reported complete: false")
