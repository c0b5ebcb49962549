"""Autobahn|Testsuite conformance of every runtime's connection driver, with ``kosoku``.

* Server side: ``kosoku`` in fuzzingclient mode drives an echo server in a
  subprocess: a raw-mode ServerConnection on the asyncio driver
  (``echo_server``, on asyncio's standard loop and on uvloop) and on the trio
  driver (``echo_trio``). There is no blocking server (goomerang_io.sync
  holds only a client), so the blocking runtime is on the client side only.
* Client side: ``kosoku`` serves the cases (fuzzingserver mode) and a
  raw-mode ClientConnection runs them from a subprocess: on the asyncio
  driver (``echo_client``, standard loop and uvloop), on the blocking
  client's driver (``echo_sync``: one IO thread, a non-blocking socket and
  ``select``) and on the trio driver (``echo_trio``).

Groups 1-7, 9 and 10 run (12 and 13 are permessage-deflate, not offered).
Every case must be OK or INFORMATIONAL for both the message exchange and the
closing handshake; NON-STRICT, FAILED, UNCLEAN, WRONG CODE and the rest fail
the test with the list of cases. ``pytest -s`` prints a summary table; set
``AUTOBAHN_REPORT_DIR`` to also write the HTML/JSON reports there.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import kosoku  # a test dependency (pyproject [test]): never skipped
import pytest

CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
EXCLUDE = ["12.*", "13.*"]
ACCEPTED = {"OK", "INFORMATIONAL"}
PARALLEL = 8
RUN_TIMEOUT = 150.0
ROOT = Path(__file__).resolve().parents[2]


def _verdicts(result: Any) -> tuple[str, str]:
    return result.behavior.value, result.behavior_close.value


def _summary(title: str, results: list[Any]) -> str:
    """A table of verdict counts per case group, then any case not accepted."""
    groups: dict[str, Counter[str]] = {}
    for r in results:
        group = r.case_id.split(".")[0]
        behavior, close = _verdicts(r)
        verdict = behavior if close in ACCEPTED else f"{behavior}/{close}"
        groups.setdefault(group, Counter())[verdict] += 1
    columns = sorted({v for c in groups.values() for v in c})
    lines = [f"Autobahn {title}: {len(results)} cases"]
    lines.append("group  " + "  ".join(f"{c:>13}" for c in columns))
    for group in sorted(groups, key=int):
        counts = groups[group]
        lines.append(f"{group:>5}  " + "  ".join(f"{counts.get(c, 0):>13}" for c in columns))
    bad = [r for r in results if not set(_verdicts(r)) <= ACCEPTED]
    for r in bad:
        behavior, close = _verdicts(r)
        lines.append(
            f"  {r.case_id}: {behavior} / {close}: {r.description} | {r.result} | {r.result_close}"
        )
    return "\n".join(lines)


def _check(title: str, results: list[Any]) -> None:
    table = _summary(title, results)
    print("\n" + table)
    report_dir = os.environ.get("AUTOBAHN_REPORT_DIR")
    if report_dir:
        from kosoku._report import write_reports

        write_reports(results, str(Path(report_dir) / title.replace(" ", "_")))
    assert len(results) > 250, table
    bad = [r.case_id for r in results if not set(_verdicts(r)) <= ACCEPTED]
    assert not bad, table


# The peers per runtime: raw-mode engines on each runtime's connection driver. There
# is no blocking server (goomerang_io.sync has only a client), so "blocking" is a client.
SERVERS = {
    "asyncio": ["tests.autobahn.echo_server", "--loop", "asyncio"],
    "uvloop": ["tests.autobahn.echo_server", "--loop", "uvloop"],
    "trio": ["tests.autobahn.echo_trio", "server"],
}
CLIENTS = {
    "asyncio": ["tests.autobahn.echo_client", "--loop", "asyncio"],
    "uvloop": ["tests.autobahn.echo_client", "--loop", "uvloop"],
    "blocking": ["tests.autobahn.echo_sync"],
    "trio": ["tests.autobahn.echo_trio", "client"],
}


async def _start_echo_server(runtime: str = "asyncio") -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *SERVERS[runtime],
        "--port",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.startswith(b"LISTENING "), line
    return proc, int(line.split()[1])


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def _run_server_side(runtime: str) -> list[Any]:
    proc, port = await _start_echo_server(runtime)
    try:
        try:
            return list(
                await asyncio.wait_for(
                    kosoku.run_fuzzingclient(
                        f"ws://127.0.0.1:{port}/", CASES, EXCLUDE, concurrency=PARALLEL
                    ),
                    RUN_TIMEOUT,
                )
            )
        except kosoku.FailureError as failure:
            return list(failure.results)
    finally:
        await _stop(proc)


async def _run_client_side(runtime: str) -> list[Any]:
    async with kosoku.run_fuzzingserver(CASES, EXCLUDE, host="127.0.0.1", port=0) as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *CLIENTS[runtime],
            f"127.0.0.1:{server.port}",
            "--parallel",
            str(PARALLEL),
            cwd=ROOT,
        )
        try:
            try:
                results = list(await asyncio.wait_for(server.get_result(), RUN_TIMEOUT))
            except kosoku.FailureError as failure:
                results = list(failure.results)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            await _stop(proc)
    return results


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("runtime", SERVERS)
def test_autobahn_server_side(runtime: str) -> None:
    """Our ServerConnection against the fuzzing client."""
    _check(f"server side {runtime}", asyncio.run(_run_server_side(runtime)))


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("runtime", CLIENTS)
def test_autobahn_client_side(runtime: str) -> None:
    """Our ClientConnection against the fuzzing server."""
    _check(f"client side {runtime}", asyncio.run(_run_client_side(runtime)))
