"""``python -m goomerang_io serve`` as a real subprocess: port from its output, echo, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from util import WAIT, Inbox, msg, recorder_handler, run

from goomerang_io import Client
from goomerang_proto import ConnectionLost, NotRunning, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(rb"listening on ws://(127\.0\.0\.1):(\d+)/ws")


async def start_cli() -> tuple[asyncio.subprocess.Process, str]:
    """Start the echo server on an ephemeral port; return it and its ``host:port``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "goomerang_io",
        "serve",
        "--listen",
        "127.0.0.1:0",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen = b""
    try:
        async with asyncio.timeout(15):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    raise AssertionError(f"server exited before listening: {seen!r}")
                seen += line
                found = LISTENING.search(line)
                if found:
                    return proc, f"{found[1].decode()}:{found[2].decode()}"
    except BaseException:
        proc.kill()
        await proc.wait()
        raise


async def stop(proc: asyncio.subprocess.Process) -> None:
    """Kill ``proc`` if it still runs (cleanup after a failed assertion)."""
    if proc.returncode is None:
        proc.kill()
        await asyncio.wait_for(proc.wait(), WAIT)


@pytest.mark.timeout(60)
def test_cli_echo_server_round_trip_sync_and_sigterm() -> None:
    async def main() -> None:
        proc, addr = await start_cli()
        try:
            echoed = Inbox()
            statuses = Inbox()
            client = Client(addr, heartbeat_interval=None, on_status_change=statuses)
            client.handle(MessageV1, recorder_handler(echoed))
            await asyncio.wait_for(client.connect(), WAIT)
            await client.send(msg("echo me", {"k": "v"}))
            (m,) = await echoed.wait_count(1)
            assert m.payload == MessageV1(message="echo me")
            assert m.headers == {"k": "v"}
            got = await client.send_sync(msg("sync", {"k": "v"}), timeout=WAIT)
            assert got.payload == MessageV1(message="sync")
            assert got.headers == {"k": "v", "echo": "1"}
            assert got.is_sync
            proc.send_signal(signal.SIGTERM)
            await statuses.wait_for(lambda s: s is Status.CLOSED, timeout=10)
            assert client.close_code == 1000
            assert await asyncio.wait_for(proc.wait(), 10) == 0
            with pytest.raises(NotRunning):
                await client.send(msg())
        finally:
            await stop(proc)

    run(main(), timeout=45)


@pytest.mark.timeout(60)
def test_client_of_a_killed_server_process_closes_and_fails_fast() -> None:
    async def main() -> None:
        proc, addr = await start_cli()
        try:
            statuses = Inbox()
            errors = Inbox()
            client = Client(
                addr, heartbeat_interval=None, on_status_change=statuses, on_error=errors
            )
            client.register_message(MessageV1)
            await asyncio.wait_for(client.connect(), WAIT)
            got = await client.send_sync(msg("alive"), timeout=WAIT)
            assert got.payload == MessageV1(message="alive")
            proc.kill()
            await asyncio.wait_for(proc.wait(), WAIT)
            await statuses.wait_for(lambda s: s is Status.CLOSED)
            assert client.status is Status.CLOSED
            with pytest.raises(NotRunning):
                await client.send(msg())
            with pytest.raises(NotRunning):
                await client.send_sync(msg())
            assert any(isinstance(e, ConnectionLost) for e in errors.items)
        finally:
            await stop(proc)

    run(main(), timeout=45)
