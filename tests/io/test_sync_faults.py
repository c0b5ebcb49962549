"""The blocking client against misbehaving servers: every deadline fires, memory stays bounded.

Each server here is a raw TCP socket in a thread that completes the WebSocket
upgrade and then misbehaves (stops reading, floods, never closes, sends odd
Close frames). Deadlines are asserted to fire within their option + 0.5 s.
"""

from __future__ import annotations

import queue
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from goomerang_io.sync import Client
from goomerang_io.sync.connection import READ_SIZE
from goomerang_io.sync.inbox import HIGH_BYTES
from goomerang_proto import ConnectionLost, Message, Status, SyncTimeout
from goomerang_proto.frames import OP_CLOSE, OP_PING, build_frame, close_payload
from goomerang_proto.handshake import accept_token
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1
from goomerang_proto.server_connection import prepare

WAIT = 5.0
SLACK = 0.5  # a deadline may fire this late (scheduling on a loaded 2-core CI box)
MiB = 1024 * 1024


class RawServer:
    """One-connection WebSocket server on a raw socket: upgrade, then ``behaviour(conn)``.

    ``behaviour`` runs in the server thread with the accepted socket; it ends
    when the test sets ``stop`` (or on its own). ``sndbuf`` shrinks the
    server's send buffer so floods block sooner.
    """

    def __init__(
        self, behaviour: Callable[[RawServer, socket.socket], None], sndbuf: int = 0
    ) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.behaviour = behaviour
        self.sndbuf = sndbuf
        self.stop = threading.Event()
        self.ended = threading.Event()
        self.facts: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, name="raw-server", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            if self.sndbuf:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
            conn.settimeout(WAIT)
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            key = re.search(rb"Sec-WebSocket-Key: (\S+)", head)
            assert key is not None
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept_token(key.group(1).decode()).encode()
                + b"\r\n\r\n"
            )
            try:
                self.behaviour(self, conn)
            finally:
                self.ended.set()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(WAIT)
        self.listener.close()


def stall(server: RawServer, conn: socket.socket) -> None:
    """Never read again; keep the connection open until the test ends."""
    server.stop.wait(WAIT * 2)


def wait_gone(conn: socket.socket, timeout: float = WAIT) -> float | None:
    """Read and drop until EOF or reset; the monotonic time it came (None: not in time)."""
    end = time.monotonic() + timeout
    conn.setblocking(False)
    while (left := end - time.monotonic()) > 0:
        select.select([conn], [], [], left)
        try:
            if not conn.recv(1 << 20):
                return time.monotonic()
        except BlockingIOError:
            continue
        except OSError:  # reset: the client aborted
            return time.monotonic()
    return None


def flood(server: RawServer, conn: socket.socket, frame: bytes, offered: int) -> tuple[int, float]:
    """Send ``frame`` until ``offered`` bytes went out or none could for 0.5 s.

    Returns (bytes sent, monotonic time of the last successful send).
    """
    conn.setblocking(False)
    sent = 0
    last = time.monotonic()
    data = memoryview(frame)
    pos = 0
    while sent < offered and not server.stop.is_set():
        _, writable, _ = select.select([], [conn], [], 0.5)
        if not writable:
            break
        try:
            n = conn.send(data[pos:])
        except BlockingIOError:
            continue
        except OSError:
            break
        sent += n
        last = time.monotonic()
        pos = (pos + n) % len(frame)
    return sent, last


class Watch:
    """The client's errors, statuses and close, with the time the close came."""

    def __init__(self) -> None:
        self.errors: queue.Queue[BaseException] = queue.Queue()
        self.statuses: list[Status] = []
        self.status_times: dict[Status, float] = {}
        self.closed = threading.Event()
        self.closed_at = 0.0

    def hooks(self) -> dict[str, Any]:
        return {
            "on_error": self.errors.put,
            "on_status_change": self._on_status,
            "on_close": self._on_close,
        }

    def _on_status(self, status: Status) -> None:
        self.statuses.append(status)
        self.status_times[status] = time.monotonic()

    def _on_close(self) -> None:
        self.closed_at = time.monotonic()
        self.closed.set()

    def error_list(self) -> list[BaseException]:
        out = []
        while not self.errors.empty():
            out.append(self.errors.get_nowait())
        return out


@pytest.mark.parametrize("heartbeat", [None, 0.5], ids=["no-heartbeat", "heartbeat"])
def test_send_to_a_server_that_stopped_reading_raises_within_ping_timeout(
    heartbeat: float | None,
) -> None:
    ping_timeout = 1.0
    server = RawServer(stall)
    watch = Watch()
    client = Client(
        server.addr, heartbeat_interval=heartbeat, ping_timeout=ping_timeout, **watch.hooks()
    )
    client.connect()
    big = Message(MessageV1(message="x" * 200_000))
    started = time.monotonic()
    try:
        with pytest.raises(ConnectionLost):
            for _ in range(200):  # 40 MB at most; the socket buffers fill long before
                started = time.monotonic()
                client.send(big)
        took = time.monotonic() - started
        assert took <= ping_timeout + SLACK, f"send() raised after {took:.2f} s"
        assert watch.closed.wait(WAIT)
        errors = watch.error_list()
        assert len(errors) == 1 and isinstance(errors[0], ConnectionLost), errors
        assert watch.statuses == [Status.RUNNING, Status.CLOSING, Status.CLOSED]
        assert client.status is Status.CLOSED
    finally:
        server.close()


def test_close_returns_within_close_timeout_while_another_thread_is_stuck_writing() -> None:
    close_timeout = 1.0
    server = RawServer(stall)
    watch = Watch()
    # ping_timeout longer than the test: only the close timeout may end the stuck write
    client = Client(
        server.addr,
        heartbeat_interval=None,
        ping_timeout=30,
        close_timeout=close_timeout,
        max_message_size=16_000_000,  # our own sends are checked against it
        **watch.hooks(),
    )
    client.connect()
    outcome: queue.Queue[BaseException | None] = queue.Queue()
    link = client._link
    assert link is not None

    def writer() -> None:
        try:
            client.send(Message(MessageV1(message="x" * 8_000_000)))
            outcome.put(None)
        except BaseException as exc:
            outcome.put(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        # the writer is stuck once the socket took what it could and 8 MB stay queued
        deadline = time.monotonic() + WAIT
        while link.buffered < 1_000_000 and time.monotonic() < deadline:
            thread.join(0.01)
        assert thread.is_alive() and link.buffered >= 1_000_000
        started = time.monotonic()
        client.close()
        took = time.monotonic() - started
        assert took <= close_timeout + SLACK, f"close() took {took:.2f} s"
        assert isinstance(outcome.get(timeout=WAIT), ConnectionLost)
        assert link.closed.is_set()
        assert client.status is Status.CLOSED
        assert watch.statuses == [Status.RUNNING, Status.CLOSING, Status.CLOSED]
        assert watch.error_list() == []  # the user closed: the aborted write is no error
    finally:
        server.close()


def test_close_returns_within_close_timeout_when_the_server_never_answers() -> None:
    gone: queue.Queue[float | None] = queue.Queue()

    def read_and_ignore(server: RawServer, conn: socket.socket) -> None:
        gone.put(wait_gone(conn))  # reads our Close, never answers it

    server = RawServer(read_and_ignore)
    client = Client(server.addr, heartbeat_interval=None, close_timeout=1.0)
    client.connect()
    try:
        started = time.monotonic()
        client.close()
        took = time.monotonic() - started
        assert took <= 1.0 + SLACK, f"close() took {took:.2f} s"
        ended = gone.get(timeout=WAIT)
        assert ended is not None and ended - started <= 1.0 + SLACK
        assert client.status is Status.CLOSED
    finally:
        server.close()


@pytest.mark.parametrize(
    ("payload", "code", "is_error"),
    [
        (close_payload(1000, "bye"), 1000, False),
        (close_payload(1001, "going away"), 1001, False),
        (b"", 1005, False),  # an empty Close frame: legal, no status
        (close_payload(1011, "internal error"), 1011, True),
        (None, 1006, True),  # TCP ends without a Close frame
    ],
    ids=["1000", "1001", "empty-1005", "1011", "eof-1006"],
)
def test_server_close_is_an_error_only_when_it_is_not_clean(
    payload: bytes | None, code: int, is_error: bool
) -> None:
    answer: queue.Queue[bytes] = queue.Queue()

    def close_first(server: RawServer, conn: socket.socket) -> None:
        if payload is None:
            conn.shutdown(socket.SHUT_RDWR)
            return
        conn.sendall(build_frame(OP_CLOSE, payload))
        answer.put(conn.recv(1024))  # the client's Close answer (masked)

    server = RawServer(close_first)
    watch = Watch()
    client = Client(server.addr, heartbeat_interval=None, **watch.hooks())
    client.connect()
    try:
        assert watch.closed.wait(WAIT)
        assert client.close_code == code
        errors = watch.error_list()
        if is_error:
            assert len(errors) == 1 and isinstance(errors[0], ConnectionLost), errors
            assert f"code {code}" in str(errors[0])
        else:
            assert errors == []
            assert answer.get(timeout=WAIT)[0] == 0x80 | OP_CLOSE  # the client answered
        assert watch.statuses == [Status.RUNNING, Status.CLOSING, Status.CLOSED]
    finally:
        server.close()


def test_server_that_closes_but_keeps_tcp_open_is_dropped_after_close_timeout() -> None:
    gone: queue.Queue[tuple[float, float | None]] = queue.Queue()

    def close_and_linger(server: RawServer, conn: socket.socket) -> None:
        conn.sendall(build_frame(OP_CLOSE, close_payload(1000, "")))
        sent = time.monotonic()
        gone.put((sent, wait_gone(conn)))  # never closes TCP itself

    server = RawServer(close_and_linger)
    watch = Watch()
    client = Client(server.addr, heartbeat_interval=None, close_timeout=1.0, **watch.hooks())
    client.connect()
    try:
        sent, ended = gone.get(timeout=WAIT)
        assert ended is not None and ended - sent <= 1.0 + SLACK
        assert watch.closed.wait(WAIT)
        assert watch.error_list() == []
        # CLOSING as soon as the server's Close arrived, not when TCP ended (Go's sequence)
        assert watch.statuses == [Status.RUNNING, Status.CLOSING, Status.CLOSED]
        assert watch.status_times[Status.CLOSING] - sent < 0.5
    finally:
        server.close()


def test_ping_flood_from_a_server_that_never_reads_is_bounded_then_dropped() -> None:
    """Pongs the client cannot write stay bounded; the write stall then drops the server."""
    ping_timeout = 1.0
    write_limit = 256 * 1024
    result: queue.Queue[tuple[int, float]] = queue.Queue()

    def ping_flood(server: RawServer, conn: socket.socket) -> None:
        result.put(flood(server, conn, build_frame(OP_PING, b"p" * 125), 80 * MiB))
        server.stop.wait(WAIT)

    server = RawServer(ping_flood, sndbuf=64 * 1024)
    watch = Watch()
    client = Client(
        server.addr,
        heartbeat_interval=None,
        ping_timeout=ping_timeout,
        write_limit=write_limit,
        **watch.hooks(),
    )
    client.connect()
    link = client._link
    assert link is not None
    try:
        sent, _ = result.get(timeout=WAIT * 2)
        assert watch.closed.wait(WAIT)
        # the stall deadline counts from the last byte the socket took
        assert watch.closed_at - link._progress <= ping_timeout + SLACK
        # queued pongs: at most write_limit plus what one read of pings asks for
        assert link.peak_buffered <= write_limit + 2 * READ_SIZE, link.peak_buffered
        # the client held a fraction of what it was sent (the rest it answered or dropped)
        assert sent >= 2 * link.peak_buffered, (sent, link.peak_buffered)
        errors = watch.error_list()
        assert len(errors) == 1 and isinstance(errors[0], ConnectionLost), errors
        assert "stopped reading" in str(errors[0])
    finally:
        server.close()


def test_flood_to_slow_handlers_is_held_back_by_tcp_and_nothing_is_lost() -> None:
    """Reading pauses while the handler queue is full; every message is handled afterwards."""
    frame = prepare(Message(MessageV1(message="y" * 16_000)))
    bound = 8 * MiB
    count = 5 * bound // len(frame)
    offered = count * len(frame)
    result: queue.Queue[tuple[int, float]] = queue.Queue()
    resume = threading.Event()

    def message_flood(server: RawServer, conn: socket.socket) -> None:
        sent, last = flood(server, conn, frame, offered)
        result.put((sent, last))
        if not resume.wait(WAIT * 2):
            return
        conn.setblocking(True)
        conn.settimeout(WAIT * 2)
        pos = sent % len(frame)
        if pos:
            conn.sendall(frame[pos:])
        for _ in range((offered - sent - (len(frame) - pos if pos else 0)) // len(frame)):
            conn.sendall(frame)
        server.stop.wait(WAIT * 2)

    gate = threading.Event()
    handled: list[int] = []
    all_done = threading.Event()

    def slow_handler(_sender: Any, message: Message[Any]) -> None:
        gate.wait(WAIT * 2)
        handled.append(len(message.payload.message))
        if len(handled) == count:
            all_done.set()

    server = RawServer(message_flood, sndbuf=64 * 1024)
    client = Client(server.addr, heartbeat_interval=None, close_timeout=0.2)
    client.handle(MessageV1, slow_handler)
    client.connect()
    try:
        sent, _ = result.get(timeout=WAIT * 2)
        inbox = client._inbox
        assert inbox is not None
        items, queued = inbox.queued
        assert items > 0
        assert queued <= HIGH_BYTES + 2 * READ_SIZE, queued  # the bound the inbox documents
        assert sent <= bound, sent  # the rest waits in the server: TCP held it back
        gate.set()
        resume.set()
        assert all_done.wait(WAIT * 2), f"{len(handled)} of {count} handled"
        assert handled == [16_000] * count
    finally:
        gate.set()
        resume.set()
        client.close()
        server.close()


def test_replies_to_a_server_that_never_reads_are_bounded_then_dropped() -> None:
    """Handler replies fill the output; the handler waits, reading pauses, the stall drops it."""
    ping_timeout = 1.0
    bound = 16 * MiB
    frame = prepare(Message(MessageV1(message="q" * 1000)))
    result: queue.Queue[tuple[int, float]] = queue.Queue()

    def request_flood(server: RawServer, conn: socket.socket) -> None:
        result.put(flood(server, conn, frame, 5 * bound))
        server.stop.wait(WAIT)

    server = RawServer(request_flood, sndbuf=64 * 1024)
    watch = Watch()
    client = Client(
        server.addr, heartbeat_interval=None, ping_timeout=ping_timeout, **watch.hooks()
    )
    client.handle(MessageV1, lambda sender, message: sender.send(message))  # echo every request
    client.connect()
    try:
        sent, last_send = result.get(timeout=WAIT * 2)
        assert sent <= bound, sent
        assert watch.closed.wait(WAIT)
        assert watch.closed_at - last_send <= ping_timeout + SLACK
        errors = watch.error_list()
        # once: not again as a HandlerError from each reply that could not be sent
        assert len(errors) == 1 and isinstance(errors[0], ConnectionLost), errors
        assert "stopped reading" in str(errors[0])
    finally:
        server.close()


def test_send_sync_timeout_bounds_the_write_to_a_server_that_stopped_reading() -> None:
    server = RawServer(stall)
    watch = Watch()
    client = Client(
        server.addr,
        heartbeat_interval=None,
        ping_timeout=30,
        max_message_size=16_000_000,  # our own sends are checked against it
        **watch.hooks(),
    )
    client.connect()
    link = client._link
    assert link is not None
    outcome: queue.Queue[BaseException | None] = queue.Queue()

    def fill() -> None:
        try:
            client.send(Message(MessageV1(message="x" * 8_000_000)))
            outcome.put(None)
        except BaseException as exc:
            outcome.put(exc)

    filler = threading.Thread(target=fill, daemon=True)
    filler.start()
    try:
        deadline = time.monotonic() + WAIT
        while link.buffered < 1_000_000 and time.monotonic() < deadline:
            filler.join(0.01)
        assert link.buffered >= 1_000_000  # the socket is full: what follows waits
        started = time.monotonic()
        with pytest.raises(SyncTimeout, match="still waits to be written"):
            client.send_sync(Message(MessageV1(message="small")), timeout=0.5)
        took = time.monotonic() - started
        assert took <= 0.5 + SLACK, f"send_sync raised after {took:.2f} s"
        assert len(client._pending) == 0
        assert client.status is Status.RUNNING  # only the caller gave up; ping_timeout decides
        assert watch.error_list() == []
    finally:
        server.close()
        filler.join(WAIT)
    assert isinstance(outcome.get(timeout=WAIT), ConnectionLost)  # the server went away
