"""The blocking client sees a server's graceful shutdown as a clean close, not an error.

Against the asyncio Server (``make test``) and against the real Go goomerang
v0.3.0 server (marked ``goref``: ``make interop`` builds the Go peer, sets
``GOREF_DIR`` and runs it; ``make test`` deselects it).
"""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from threaded import ThreadedServer

from goomerang_io import Server
from goomerang_io.sync import Client
from goomerang_proto import Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

WAIT = 5.0


class Watch:
    """Errors, statuses and the close of one client."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.statuses: list[Status] = []
        self.closed = threading.Event()

    def hooks(self) -> dict[str, Any]:
        return {
            "on_error": self.errors.append,
            "on_status_change": self.statuses.append,
            "on_close": self.closed.set,
        }


def test_graceful_shutdown_of_the_asyncio_server_is_no_error() -> None:
    def setup(server: Server) -> None:
        server.handle(MessageV1, lambda s, m: s.send(m))

    with ThreadedServer(setup, shutdown_timeout=1.0) as ts:
        watches = [Watch() for _ in range(3)]
        clients = [Client(ts.addr, heartbeat_interval=0.2, **w.hooks()) for w in watches]
        for client in clients:
            client.register_message(MessageV1)
            client.connect()
            assert client.send_sync(Message(MessageV1(message="hi")), timeout=WAIT)
        assert ts.server is not None
        ts.call(ts.server.shutdown, timeout=WAIT + 3)
        for client, watch in zip(clients, watches, strict=True):
            assert watch.closed.wait(WAIT)
            assert client.close_code == 1000
            assert watch.errors == []
            assert watch.statuses == [Status.RUNNING, Status.CLOSING, Status.CLOSED]


@pytest.mark.goref
def test_graceful_shutdown_of_the_go_server_is_no_error(goref_dir: Path) -> None:
    binary = goref_dir / "refserver"
    proc = subprocess.Popen(
        [str(binary), "-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines: list[str] = []

        def read_ready() -> None:
            assert proc.stdout is not None
            lines.append(proc.stdout.readline())

        ready = threading.Thread(target=read_ready, daemon=True)
        ready.start()
        ready.join(WAIT * 2)
        line = lines[0] if lines else ""
        assert line.startswith("READY "), f"refserver said {line!r}"
        addr = line.split()[1]
        watch = Watch()
        client = Client(addr, heartbeat_interval=0.2, **watch.hooks())
        client.register_message(MessageV1)
        client.connect()
        reply = client.send_sync(Message(MessageV1(message="hello go")), timeout=WAIT)
        assert reply.payload.message == "hello go"
        proc.send_signal(signal.SIGTERM)  # graceful: Close 1000 to every client
        assert watch.closed.wait(WAIT * 2)
        assert proc.wait(WAIT * 2) == 0
        assert client.close_code == 1000
        assert watch.errors == []
        assert watch.statuses == [Status.RUNNING, Status.CLOSING, Status.CLOSED]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
