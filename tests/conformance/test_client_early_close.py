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
from misbehave_peers import CloseWatch, RawServer, answer_upgrade, wait_closed_or_answer

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


class TwoConnectionServer:
    """Ends the first connection with Close 1011 (the client reconnects); answers the
    second upgrade only once ``release`` is set, then waits for the client's Close."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.second_request = threading.Event()
        self.release = threading.Event()
        self.second_close: bytes | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        first, _ = self.listener.accept()
        with first:
            first.settimeout(5.0)
            answer_upgrade(first, lambda: None)
            first.sendall(build_frame(OP_CLOSE, close_payload(1011, "go away")))
            wait_closed_or_answer(first)
        second, _ = self.listener.accept()
        with second:
            second.settimeout(5.0)

            def hold() -> None:
                self.second_request.set()
                self.release.wait(5.0)

            answer_upgrade(second, hold)
            self.second_close = second.recv(4096)  # the client's Close (b"": TCP ended)

    def close(self) -> None:
        self.release.set()
        self.thread.join(5.0)
        self.listener.close()


@pytest.mark.timeout(20)
def test_the_blocking_client_closed_during_a_reconnect_handshake_stays_closed() -> None:
    """close() while a reconnect attempt waits for its 101: the late 101 must not bring
    the client back to RUNNING (it did); the attempt's connection is closed cleanly."""
    from goomerang_io.sync import Client

    server = TwoConnectionServer()
    statuses: list[str] = []
    try:
        client = Client(
            server.addr, reconnect=True, reconnect_initial=0.01, heartbeat_interval=None,
            on_error=[lambda _e: None],
        )  # fmt: skip
        client.on_status_change(lambda s: statuses.append(s.name))
        client.connect()
        assert server.second_request.wait(5.0)
        client.close()  # CLOSED now: stops reconnecting
        assert client.status is Status.CLOSED
        server.release.set()  # the late 101
        server.thread.join(5.0)
        assert not server.thread.is_alive()
        assert client.status is Status.CLOSED
        assert statuses == ["RUNNING", "CLOSING", "CLOSED"]
        assert server.second_close is not None and server.second_close[:1] == b"\x88"
    finally:
        server.close()


class HeldUpgradeServer:
    """Answers every upgrade but the ``held``-th (from 0), which it never answers: it
    records whether the client then ends that TCP connection (``held_ended``). Each
    answered connection lasts until the client closes it."""

    def __init__(self, held: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.held = held
        self.held_request = threading.Event()
        self.held_ended = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for index in range(self.held + 2):
            sock, _ = self.listener.accept()
            with sock:
                sock.settimeout(5.0)
                if index != self.held:
                    answer_upgrade(sock, lambda: None)
                    wait_closed_or_answer(sock)
                    continue
                head = b""
                while b"\r\n\r\n" not in head:
                    head += sock.recv(4096)
                self.held_request.set()
                try:
                    if not sock.recv(4096):
                        self.held_ended.set()
                except OSError as exc:  # a reset ends it too; a timeout does not
                    if not isinstance(exc, TimeoutError):
                        self.held_ended.set()

    def close(self) -> None:
        self.thread.join(5.0)
        self.listener.close()


async def _cancel_then_connect_asyncio(server: HeldUpgradeServer) -> dict[str, Any]:
    from goomerang_io import Client

    errors: list[BaseException] = []
    client = Client(server.addr, heartbeat_interval=None, on_error=[errors.append])
    attempt = asyncio.ensure_future(client.connect())
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, server.held_request.wait, 5.0)
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    after_cancel = client.status.name
    await client.connect()
    await client.close()
    return {"errors": errors, "after_cancel": after_cancel}


async def _cancel_then_connect_trio(server: HeldUpgradeServer) -> dict[str, Any]:
    import trio

    from goomerang_io.trio import Client

    errors: list[BaseException] = []
    client = Client(server.addr, heartbeat_interval=None, on_error=[errors.append])
    async with client:  # connection 0, answered
        await client.close()
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def cancel_once_held() -> None:
                    await trio.to_thread.run_sync(server.held_request.wait, 5.0)
                    scope.cancel()

                nursery.start_soon(cancel_once_held)
                await client.connect()  # connection 1, held: cancelled
        after_cancel = client.status.name
        await client.connect()  # connection 2
        await client.close()
    return {"errors": errors, "after_cancel": after_cancel}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("runtime", ["asyncio", "uvloop", "trio"])
def test_a_cancelled_connect_leaves_nothing_behind(runtime: str) -> None:
    """The caller cancels connect() while the server holds the 101: the attempt's TCP
    connection ends, nothing is reported for it later (asyncio reported a HandshakeError;
    trio kept the socket and its events woke the next connect()), and the next
    connect() works."""
    if runtime == "trio":
        import trio

        server = HeldUpgradeServer(held=1)
        try:
            out = trio.run(_cancel_then_connect_trio, server)
        finally:
            server.close()
    else:
        server = HeldUpgradeServer(held=0)
        loop = asyncio.SelectorEventLoop() if runtime == "asyncio" else uvloop.Loop()
        try:
            out = loop.run_until_complete(_cancel_then_connect_asyncio(server))
        finally:
            loop.close()
            server.close()
    assert server.held_ended.is_set()
    assert out["after_cancel"] != "RUNNING"
    assert out["errors"] == []
