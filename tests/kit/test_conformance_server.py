"""`goomerang conformance server` judged by the servers it runs against."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from kit_helpers import SERVE, statuses

from goomerang_io import Message
from goomerang_io.cli import echo_handler, main
from goomerang_io.conformance.report import render_html, write_html, write_json
from goomerang_io.conformance.runner import run_server_suite, select
from goomerang_io.conformance.suite import CASES
from goomerang_io.conformance.target import Target
from goomerang_io.testing import ServerThread
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

# Verdicts against `goomerang serve` that are not OK, each with its reason. When the
# fix lands the case turns OK and this test says to remove the entry.
NOT_OK_SERVE = {
    "10.1": ("INFORMATIONAL", "always informational: reports what a silent peer meets"),
}


@pytest.mark.timeout(90)
def test_goomerang_serve_passes_every_case() -> None:
    target = Target(command=SERVE)
    try:
        report = run_server_suite(target)
    finally:
        target.close()
    got = statuses(report)
    assert set(got) == set(CASES)
    unexpected = {
        cid: (status, next(r.summary for r in report.results if r.id == cid))
        for cid, status in got.items()
        if status != NOT_OK_SERVE.get(cid, ("OK",))[0]
    }
    assert not unexpected, unexpected
    assert report.counts()["NOT APPLICABLE"] == 0


# The same suite, command mode, on the other server runtimes (tests/kit/serve_runtime.py):
# `goomerang serve` above runs on uvloop; these are the standard asyncio loop and trio.
# There is no blocking server (goomerang_io.sync holds only a client). Verdicts that are
# not OK, per runtime, each with its reason; when a fix lands the test says to remove it.
NOT_OK_RUNTIME: dict[str, dict[str, tuple[str, str]]] = {
    "asyncio": NOT_OK_SERVE,
    "trio": NOT_OK_SERVE,
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("runtime", sorted(NOT_OK_RUNTIME))
def test_every_server_runtime_passes_every_case(runtime: str) -> None:
    serve = [sys.executable, str(Path(__file__).with_name("serve_runtime.py")), runtime, "{addr}"]
    target = Target(command=serve)
    try:
        report = run_server_suite(target)
    finally:
        target.close()
    got = statuses(report)
    assert set(got) == set(CASES)
    expected = NOT_OK_RUNTIME[runtime]
    unexpected = {
        cid: (status, next(r.summary for r in report.results if r.id == cid))
        for cid, status in got.items()
        if status != expected.get(cid, ("OK",))[0]
    }
    assert not unexpected, f"not as NOT_OK_RUNTIME says (a fixed case: drop it): {unexpected}"
    assert report.counts()["NOT APPLICABLE"] == 0


def _serve_setup(server: Any) -> None:
    server.handle(MessageV1, echo_handler)


def test_url_mode_runs_what_a_url_allows_and_marks_the_rest_not_applicable() -> None:
    with ServerThread(_serve_setup) as st:
        target = Target(st.url)
        report = run_server_suite(target, only=["1.1", "2.5", "4.1", "8.1", "9"])
    got = statuses(report)
    assert got == {
        "1.1": "OK",
        "2.5": "OK",
        "4.1": "OK",
        "8.1": "NOT APPLICABLE",
        "9.1": "NOT APPLICABLE",
        "9.2": "NOT APPLICABLE",
    }


def test_a_server_off_the_profile_fails_the_cases_that_check_it() -> None:
    """An echo that drops headers and never adds ``echo: 1``: the cases say so, with the diff."""

    def careless(server: Any) -> None:
        server.handle(MessageV1, lambda s, m: s.send(Message(m.payload)))

    with ServerThread(careless) as st:
        report = run_server_suite(Target(st.url), only=["2.2", "2.5", "2.7", "5.1"])
    got = statuses(report)
    assert got == {"2.2": "FAILED", "2.5": "FAILED", "2.7": "FAILED", "5.1": "OK"}
    sync = next(r for r in report.results if r.id == "2.5")
    assert "'echo': '1'" in sync.expected and "'echo'" not in sync.got


def test_reports_are_written_as_json_and_html(tmp_path: Path) -> None:
    with ServerThread(_serve_setup) as st:
        report = run_server_suite(
            Target(st.url), only=["1.1", "8.1"], notes={"8.1": "needs a command"}
        )
    write_json(report, tmp_path / "r.json")
    write_html(report, tmp_path / "r.html", "t")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["counts"] == {"OK": 1, "FAILED": 0, "INFORMATIONAL": 0, "NOT APPLICABLE": 1}
    assert [c["id"] for c in data["cases"]] == ["1.1", "8.1"]
    page = (tmp_path / "r.html").read_text()
    assert page.count('<td class="id">1.1</td>') == 1 and "needs a command" in page
    assert "NOT APPLICABLE 1" in render_html(report)


def test_case_selection_by_group_and_id() -> None:
    assert [c.id for c in select(["9"])] == ["9.1", "9.2"]
    assert [c.id for c in select(["8.1"])] == ["8.1"]
    ids = [c.id for c in select(None)]
    assert ids.index("8.10") > ids.index("8.9") and len(ids) == len(CASES)


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", "server"]) == 2
    assert main(["conformance", "client"]) == 2
    assert "give" in capsys.readouterr().err
    assert main(["conformance", "server", "http://127.0.0.1:1/ws"]) == 2
    assert "expected ws://" in capsys.readouterr().err
    assert main(["conformance", "server", "--", "/nonexistent/server", "{addr}"]) == 2
    assert "did not start" in capsys.readouterr().err
    exits_at_once = ["conformance", "server", "--", sys.executable, "-c", "raise SystemExit(7)"]
    assert main(exits_at_once) == 2
    assert "exited with 7" in capsys.readouterr().err


def test_cli_writes_reports_and_exits_1_on_a_failed_case(tmp_path: Path) -> None:
    def careless(server: Any) -> None:
        server.handle(MessageV1, lambda s, m: s.send(Message(m.payload)))

    with ServerThread(careless) as st:
        code = main(
            ["conformance", "server", st.url, "--cases", "2.5", "-q", "--json", str(tmp_path / "j")]
        )
    assert code == 1
    assert json.loads((tmp_path / "j").read_text())["counts"]["FAILED"] == 1
