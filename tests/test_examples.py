"""The engine-embedding examples (examples/echo_server.py, examples/echo_client.py) work.

The example server runs in a subprocess and serves the example client, and
``goomerang_io.Client`` (send, send_sync, close); the example client also runs
against ``goomerang serve``. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from goomerang_io import Client
from goomerang_io.loop import run
from goomerang_proto import Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ENV = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


def first_line(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return proc.stdout.readline().decode()


def start(argv: list[str], pattern: str) -> Iterator[str]:
    """Run a server child until the test ends; yield the ``host:port`` its first line names."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV)
    try:
        line = first_line(proc)
        found = re.search(pattern, line)
        assert found, f"unexpected first line {line!r}"
        yield found[1]
        assert proc.poll() is None, "the server died during the test"
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def example_server() -> Iterator[str]:
    yield from start(
        [sys.executable, str(EXAMPLES / "echo_server.py"), "127.0.0.1:0"], r"READY (\S+)"
    )


@pytest.fixture
def cli_server() -> Iterator[str]:
    argv = [sys.executable, "-m", "goomerang_io", "serve", "--listen", "127.0.0.1:0"]
    yield from start(argv, r"listening on ws://(\S+)/ws")


def run_example_client(addr: str, n: int) -> str:
    argv = [sys.executable, str(EXAMPLES / "echo_client.py"), addr, str(n)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.timeout(40)
def test_example_client_against_example_server(example_server: str) -> None:
    out = run_example_client(example_server, 500)
    assert "echoes 500/500, sync reply 'ping', closed with 1000: True" in out


@pytest.mark.timeout(40)
def test_example_client_against_goomerang_serve(cli_server: str) -> None:
    out = run_example_client(cli_server, 200)
    assert "echoes 200/200, sync reply 'ping', closed with 1000: True" in out


@pytest.mark.timeout(40)
def test_example_server_serves_the_asyncio_client(example_server: str) -> None:
    async def main() -> None:
        inbox: asyncio.Queue[Message[MessageV1]] = asyncio.Queue()
        client = Client(example_server, heartbeat_interval=None)
        client.handle(MessageV1, lambda _s, m: inbox.put_nowait(m))
        await asyncio.wait_for(client.connect(), 10)
        for i in range(50):
            await client.send(Message(MessageV1(message=f"m{i}"), {"i": str(i), "ü": "✓"}))
        for i in range(50):  # one connection, one loop: the echoes come back in order
            echo = await asyncio.wait_for(inbox.get(), 10)
            assert echo.payload.message == f"m{i}" and echo.headers == {"i": str(i), "ü": "✓"}
        big = "x" * 600_000
        reply = await client.send_sync(Message(MessageV1(message=big), {"k": "v"}), timeout=10)
        assert reply.payload.message == big and reply.headers == {"k": "v", "echo": "1"}
        await asyncio.wait_for(client.close(), 10)
        assert client.status is Status.CLOSED and client.close_code == 1000

    run(main())


def test_examples_stay_small_and_use_only_the_engine() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("echo_server.py", "echo_client.py"):
        text = (EXAMPLES / name).read_text()
        assert len(text.splitlines()) < 100, name
        assert "goomerang_io" not in text, name
        assert f"examples/{name}" in readme, name


@pytest.mark.timeout(30)
def test_example_client_arms_the_engine_timer_against_a_silent_server() -> None:
    """A server that accepts and never answers: the engine's handshake deadline (5 s in the
    example), fired by the example's loop, ends the run before its own 10 s give-up."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        addr = f"127.0.0.1:{silent.getsockname()[1]}"
        argv = [sys.executable, str(EXAMPLES / "echo_client.py"), addr, "1"]
        t0 = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=ENV)
        elapsed = time.monotonic() - t0
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "echoes 0/1" in proc.stdout
    assert 4.5 < elapsed < 9.5, elapsed
