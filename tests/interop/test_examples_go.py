"""The engine-embedding examples (examples/) against the real Go peer, both ways."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from goref_peers import HERE, Server, go_server, refclient

EXAMPLES = HERE.parents[1] / "examples"


@pytest.fixture(scope="module")
def example_server() -> Iterator[Server]:
    srv = Server([sys.executable, str(EXAMPLES / "echo_server.py"), "127.0.0.1:0"])
    try:
        yield srv
        assert srv.proc.poll() is None, srv.info()
    finally:
        srv.kill()


@pytest.mark.parametrize(
    ("mode", "args"),
    [
        ("send", ["-n", "300"]),
        ("sync", ["-n", "300", "-c", "8"]),
        ("big", ["-size", str(900 * 1024)]),
        ("headers", []),
    ],
)
def test_go_client_against_example_server(
    example_server: Server, mode: str, args: list[str]
) -> None:
    out = refclient(mode, example_server.addr, *args)
    assert out["complete"], out


def test_example_client_against_go_server() -> None:
    srv = go_server()
    try:
        argv = [sys.executable, str(EXAMPLES / "echo_client.py"), srv.addr, "300"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        assert srv.terminate() == 0, srv.info()
    finally:
        srv.kill()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "echoes 300/300, sync reply 'ping', closed with 1000: True" in proc.stdout
