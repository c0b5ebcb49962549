"""The blocking client's output queue: partial, refused and failed writes keep bytes in order."""

from __future__ import annotations

import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from goomerang_io.options import ClientOptions
from goomerang_io.sync.connection import Connection
from goomerang_proto import Status


class ScriptedSocket:
    """A socket whose ``send`` takes as many bytes as the script says (0: would block)."""

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)
        self.wire = bytearray()
        self.fail_after: int | None = None

    def setblocking(self, _flag: bool) -> None:
        pass

    def send(self, data: Any) -> int:
        take = self.script.pop(0) if self.script else len(data)
        if self.fail_after is not None:  # the peer resets once fail_after bytes went out
            take = min(take, self.fail_after - len(self.wire))
            if take <= 0:
                raise ConnectionResetError("reset by peer")
        if take == 0:
            raise BlockingIOError
        chunk = bytes(data[:take])
        self.wire += chunk
        return len(chunk)


class ScriptedEngine:
    """Just enough engine: each ``data_to_send`` returns the next queued chunk."""

    status = Status.RUNNING

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.reported: list[int] = []

    def apply_pending(self) -> None:  # no framing fault held back in this script
        pass

    def data_to_send(self) -> bytes:
        return self.pending.pop(0) if self.pending else b""

    def set_transport_buffer_size(self, size: int) -> None:  # the engine-driven version
        self.reported.append(size)

    def is_writable(self) -> bool:
        return True


def new_connection(script: list[int]) -> tuple[Connection, ScriptedSocket, ScriptedEngine]:
    sock = ScriptedSocket(script)
    engine = ScriptedEngine()
    conn = Connection(sock, engine, ClientOptions(), threading.RLock())  # type: ignore[arg-type]
    return conn, sock, engine


messages = st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=30)
scripts = st.lists(st.integers(min_value=0, max_value=200), max_size=80)


@settings(max_examples=200, deadline=None)
@given(messages=messages, script=scripts, flush_every=st.integers(min_value=1, max_value=5))
def test_bytes_leave_in_order_whatever_the_socket_takes(
    messages: list[bytes], script: list[int], flush_every: int
) -> None:
    conn, sock, engine = new_connection(script)
    with conn._lock:
        for i, message in enumerate(messages):
            engine.pending.append(message)
            conn._queue_engine_output()
            assert conn.buffered == conn._queued_total - conn._written_total
            assert conn.buffered == sum(map(len, messages[: i + 1])) - len(sock.wire)
            if i % flush_every == 0:
                conn._write_some()
        sock.script = []  # the socket drains now
        conn._write_some()
    assert bytes(sock.wire) == b"".join(messages)
    assert conn.buffered == 0 and not conn._out
    assert conn.peak_buffered <= sum(map(len, messages))
    conn._wake_r.close()
    conn._wake_w.close()


@settings(max_examples=100, deadline=None)
@given(messages=messages, cut=st.integers(min_value=0, max_value=3000))
def test_a_failed_write_ends_the_connection_and_keeps_what_went_out(
    messages: list[bytes], cut: int
) -> None:
    conn, sock, engine = new_connection([])
    sock.fail_after = cut
    with conn._lock:
        for message in messages:
            engine.pending.append(message)
            conn._queue_engine_output()
        conn._write_some()  # the IO thread tries again once select says writable
    wire = b"".join(messages)
    if len(wire) > cut:
        assert bytes(sock.wire) == wire[:cut]  # what went out before the reset, in order
        assert conn.dead and conn.failure is not None and "write" in str(conn.failure)
    else:
        assert not conn.dead and bytes(sock.wire) == wire
    conn._wake_r.close()
    conn._wake_w.close()
