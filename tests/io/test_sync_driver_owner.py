"""The blocking client's connection driver and an owner that answers on the IO thread.

What Autobahn|Testsuite found on ``goomerang_io.sync.connection`` (the
client-side run in tests/autobahn), reproduced here without it, on a raw
ClientConnection over a socketpair:

* messages that precede a framing fault in the same read are handed to the
  owner, and its answers go out, before the Close the fault causes (the
  engine's loop contract; Autobahn 3.2, 4.2.3 and 5.15 strict), whether the
  read is the one that carried the 101 answer or a later one;
* an owner that answers from ``on_events`` (the IO thread) with more than
  ``write_limit`` bytes does not wait for itself (a deadlock: only that
  thread writes the rest), and while its answers keep the connection above
  high water the IO thread stops reading, so memory stays bounded
  (Autobahn 9.x: 4-16 MiB messages echoed).
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as st

from goomerang_io.options import ClientOptions
from goomerang_io.sync.connection import READ_SIZE, Connection
from goomerang_proto import ClientConnection, GoomerangError
from goomerang_proto import events as ev
from goomerang_proto.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    FrameReader,
    build_frame,
    parse_close_payload,
)

WAIT = 10.0
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 64 * 1024 * 1024


def upgraded(with_answer: bytes, write_limit: int) -> tuple[ClientConnection, list[ev.Event]]:
    """A raw ClientConnection past the upgrade; the events after Connected (early frames)."""
    engine = ClientConnection(
        "127.0.0.1:1",
        "/",
        raw=True,
        max_message_size=MAX_MESSAGE,
        close_timeout=WAIT,
        high_water=write_limit,
        now=time.monotonic(),
    )
    request = engine.data_to_send()
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    answer = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    engine.receive_data(answer + with_answer, now=time.monotonic())
    events = engine.events()
    assert isinstance(events[0], ev.Connected), events
    return engine, events[1:]


def _send_raw(opcode: int, data: bytes, engine: ClientConnection) -> None:
    engine.send_raw(opcode, data)


def echo_connection(
    *, with_answer: bytes = b"", first_read: bytes = b"", write_limit: int = 256 * 1024
) -> tuple[Connection, socket.socket]:
    """A started driver whose owner echoes every message from ``on_events``; the server's end.

    ``with_answer`` arrives with the 101; ``first_read`` is in the socket
    before the IO thread starts, so its first read holds all of it.
    """
    ours, server = socket.socketpair()
    engine, early = upgraded(with_answer, write_limit)
    options = ClientOptions(write_limit=write_limit, heartbeat_interval=None, close_timeout=WAIT)
    conn = Connection(ours, engine, options, threading.RLock())

    def on_events(events: list[ev.Event]) -> None:
        for event in events:
            if isinstance(event, ev.RawMessage):
                try:
                    conn.submit(partial(_send_raw, event.opcode, event.data))
                except GoomerangError:
                    pass  # closing: nothing more is sent

    conn.on_events = on_events
    server.sendall(first_read)
    conn.start(early)
    return conn, server


def read_frames(
    sock: socket.socket, *, messages: int | None = None, timeout: float = WAIT
) -> list[tuple[int, bytes]]:
    """What the client wrote, until its Close frame (or ``messages`` data messages)."""
    reader = FrameReader(expect_masked=True, max_message_size=MAX_MESSAGE)
    frames: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout
    while True:
        data_count = sum(op in (OP_TEXT, OP_BINARY) for op, _ in frames)
        if (messages is not None and data_count >= messages) or any(
            op == OP_CLOSE for op, _ in frames
        ):
            return frames
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {[(op, len(p)) for op, p in frames]}"
        sock.settimeout(left)
        try:
            data = sock.recv(READ_SIZE)
        except TimeoutError:
            continue
        assert data, "the client ended TCP without a Close frame"
        reader.feed(data, frames)


# A bad frame from the server and the close code it must cause (RFC 6455 5.2, 5.4, 5.5, 8.1).
BAD_FRAMES = {
    "rsv2": (bytes([0x80 | 0x20 | OP_TEXT, 0]), 1002),
    "reserved-opcode": (bytes([0x83, 0]), 1002),
    "reserved-control-opcode": (bytes([0x8B, 0]), 1002),
    "continuation-without-start": (bytes([0x80, 1]) + b"x", 1002),
    "fragmented-ping": (bytes([0x09, 0]), 1002),
    "ping-over-125": (bytes([0x89, 126, 0, 126]) + b"p" * 126, 1002),
    "masked-by-the-server": (build_frame(OP_TEXT, b"m", mask=True), 1002),
    "invalid-utf8": (bytes([0x81, 2, 0xC3, 0x28]), 1007),
}

data_messages = st.lists(
    st.one_of(
        st.tuples(st.just(OP_TEXT), st.text(max_size=60).map(str.encode)),
        st.tuples(st.just(OP_BINARY), st.binary(max_size=300)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(
    messages=data_messages,
    bad=st.sampled_from(sorted(BAD_FRAMES)),
    with_the_101=st.booleans(),
)
def test_answers_to_messages_before_a_fault_in_the_same_read_precede_the_close(
    messages: list[tuple[int, bytes]], bad: str, with_the_101: bool
) -> None:
    frame, code = BAD_FRAMES[bad]
    read = b"".join(build_frame(op, payload) for op, payload in messages) + frame
    if with_the_101:
        conn, server = echo_connection(with_answer=read)
    else:
        conn, server = echo_connection(first_read=read)
    with server:
        frames = read_frames(server)
        assert frames[:-1] == messages
        opcode, payload = frames[-1]
        assert opcode == OP_CLOSE
        assert parse_close_payload(payload)[0] == code
    assert conn.closed.wait(WAIT)
    assert conn.failure is None


def test_an_owner_answering_on_the_io_thread_never_waits_for_itself_and_stays_bounded() -> None:
    """Echo 10 MiB with write_limit 64 KiB: no deadlock, reading pauses, memory bounded."""
    write_limit, size, count = 64 * 1024, 256 * 1024, 40
    conn, server = echo_connection(write_limit=write_limit)
    payloads = [bytes([i]) * size for i in range(count)]
    sent = threading.Event()

    def push() -> None:
        try:
            for payload in payloads:
                server.sendall(build_frame(OP_BINARY, payload))
        except OSError:
            return
        sent.set()

    pusher = threading.Thread(target=push, daemon=True)
    with server:
        pusher.start()
        # the server reads nothing yet: the client must stop reading, not buffer 10 MiB
        paused = conn.read_paused.wait(WAIT)
        assert paused, f"reading never paused, holding {conn.peak_buffered} bytes"
        frames = read_frames(server, messages=count, timeout=2 * WAIT)
        assert [payload for _op, payload in frames] == payloads
        pusher.join(WAIT)
        assert sent.is_set()
        bound = write_limit + READ_SIZE + size + 64
        assert conn.peak_buffered <= bound, (conn.peak_buffered, bound)
        conn.close(1000)
        read_frames(server)  # our Close
    assert conn.closed.wait(WAIT)
