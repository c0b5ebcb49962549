"""A server that closes right after its 101, before the client's ``connect()`` resumes.

The asyncio client's first bytes (the 101, a Close, the end of TCP) may all be
read before ``loop.create_connection`` returns to ``connect()``. Those events
belong to the new connection: the Close is reported by its code (1000 and 1005
are clean, others are errors, once), the status goes RUNNING -> CLOSING ->
CLOSED as in Go, and ``connect()`` never leaves the client RUNNING on a dead
connection. The loops below return from ``create_connection`` only once the
connection has ended, which makes that ordering certain instead of rare
(it was: about 1 in 1,000 runs under load).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import pytest
import uvloop
from misbehave_clients import clean_close
from misbehave_peers import CloseWatch, RawServer, wait_closed_or_answer

from goomerang_proto import GoomerangError, Status
from goomerang_proto.frames import OP_CLOSE, build_frame, close_payload


def _late(base: type[asyncio.AbstractEventLoop]) -> type[asyncio.AbstractEventLoop]:
    class LateConnectLoop(base):  # type: ignore[valid-type, misc]
        """``create_connection`` returns only after the connection has ended."""

        async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
            transport, protocol = await super().create_connection(*args, **kwargs)
            await asyncio.wait_for(asyncio.shield(protocol.closed), 5.0)
            return transport, protocol

    return LateConnectLoop


LOOPS = {"asyncio": _late(asyncio.SelectorEventLoop), "uvloop": _late(uvloop.Loop)}


def close_with(payload: bytes) -> Callable[[socket.socket, threading.Event], None]:
    def behave(sock: socket.socket, done: threading.Event) -> None:
        sock.sendall(build_frame(OP_CLOSE, payload))
        wait_closed_or_answer(sock)
        sock.shutdown(socket.SHUT_RDWR)

    return behave


@pytest.mark.timeout(20)
@pytest.mark.parametrize("loop_name", sorted(LOOPS))
@pytest.mark.parametrize(
    ("payload", "code", "errors"),
    [(b"", 1005, 0), (close_payload(1000, ""), 1000, 0), (close_payload(1011, "bye"), 1011, 1)],
    ids=["no-status", "1000", "1011"],
)
def test_a_close_read_before_connect_resumes_is_this_connections(
    loop_name: str, payload: bytes, code: int, errors: int
) -> None:
    server = RawServer(close_with(payload))
    loop = LOOPS[loop_name]()
    try:
        out = loop.run_until_complete(clean_close(server.addr))
    finally:
        loop.close()
        server.close()
    assert out["code"] == code
    assert len(out["errors"]) == errors, out["errors"]
    assert out["statuses"] == ["RUNNING", "CLOSING", "CLOSED"]


def reset_at_once(sock: socket.socket, done: threading.Event) -> None:
    """End TCP with a reset right after the 101 (SO_LINGER 0, then close)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.timeout(20)
def test_the_blocking_client_survives_a_reset_right_after_the_101() -> None:
    """connect() either raises a goomerang error or returns and then reports the loss
    (ConnectionLost, ending CLOSED); it raised a raw OSError from getpeername()."""
    from goomerang_io.sync import Client

    for _ in range(20):  # the reset lands before or after connect() looks at the socket
        server = RawServer(reset_at_once)
        watch = CloseWatch(threading.Event())
        client = Client(server.addr, on_error=[watch.on_error], heartbeat_interval=None)
        client.on_status_change(watch.on_status)
        try:
            client.connect()
        except GoomerangError:
            assert client.status is not Status.RUNNING
        else:
            assert watch.closed.wait(5.0), watch.statuses
            assert watch.statuses[-1] == "CLOSED"
            assert any("ConnectionLost" in e for e in watch.errors), watch.errors
        finally:
            server.close()
