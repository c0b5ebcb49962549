"""The fault proxy itself, against a plain TCP echo server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from faultproxy import FaultProxy

WAIT = 5.0


@pytest.fixture
def echo_addr() -> Iterator[tuple[str, int]]:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                try:
                    conn.sendall(data)
                except OSError:
                    return

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()
    stop.set()
    thread.join(WAIT)
    listener.close()


def connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def test_forwards_both_ways(echo_addr: tuple[str, int]) -> None:
    with FaultProxy(echo_addr) as proxy, connect(proxy) as sock:
        payload = bytes(range(256)) * 400
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload
        assert proxy.accepted == 1


def test_cut_after_n_bytes_resets_mid_stream(echo_addr: tuple[str, int]) -> None:
    with FaultProxy(echo_addr) as proxy, connect(proxy) as sock:
        proxy.cut_after(down=5)
        sock.sendall(b"0123456789")
        got = b""
        try:
            while chunk := sock.recv(100):
                got += chunk
        except ConnectionResetError:
            pass  # the cut is a reset; a FIN would do as well
        assert got == b"01234"
        assert proxy.cuts == 1


def test_stall_holds_bytes_until_resume(echo_addr: tuple[str, int]) -> None:
    with FaultProxy(echo_addr) as proxy, connect(proxy) as sock:
        proxy.stall()
        sock.sendall(b"held")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):  # nothing arrives while stalled
            sock.recv(10)
        proxy.resume()
        sock.settimeout(WAIT)
        assert recv_exactly(sock, 4) == b"held"


def test_latency_and_bandwidth(echo_addr: tuple[str, int]) -> None:
    with FaultProxy(echo_addr) as proxy, connect(proxy) as sock:
        proxy.latency = 0.1
        t0 = time.monotonic()
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        assert time.monotonic() - t0 >= 0.2  # latency each way
        proxy.latency = 0.0
        proxy.bandwidth = 100_000
        t0 = time.monotonic()
        sock.sendall(b"y" * 20_000)
        assert recv_exactly(sock, 20_000) == b"y" * 20_000
        assert time.monotonic() - t0 >= 0.15


def test_cut_all(echo_addr: tuple[str, int]) -> None:
    with FaultProxy(echo_addr) as proxy, connect(proxy) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        assert proxy.open_connections() == 1
        proxy.cut_all()
        try:
            assert sock.recv(10) == b""
        except ConnectionResetError:
            pass
        assert proxy.open_connections() == 0
