"""Connection properties, server and client side.

* One chunk, byte by byte or any split: the same events and the same output.
* Arbitrary bytes after the handshake: only documented events, a close with a
  documented code, never an exception.
* Oversized length headers fail with 1009 before the payload arrives.
* HTTP phase: arbitrary bytes never raise; they end in a 4xx response plus
  should_close_transport(), or the connection waits for more data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from engine_helpers import (
    DOCUMENTED_EVENTS,
    FAIL_CODES,
    MASK_KEY,
    REGISTRY,
    UPGRADE_REQUEST,
    UPGRADE_RESPONSE,
    WS_KEY,
    client_running,
    decode_output,
    frame,
    norm_event,
    peer_streams,
    server_running,
    splits,
    step,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goomerang_proto import events as ev
from goomerang_proto import frames as fr
from goomerang_proto.client_connection import ClientConnection
from goomerang_proto.connection import BaseConnection
from goomerang_proto.handshake import accept_token
from goomerang_proto.server_connection import ServerConnection
from goomerang_proto.status import Status

SIDES = ["server", "client"]


def _new(side: str, **kwargs: Any) -> BaseConnection:
    return server_running(**kwargs) if side == "server" else client_running(**kwargs)


def _feed(conn: BaseConnection, chunks: Iterable[bytes]) -> tuple[list[Any], bytes]:
    events: list[Any] = []
    out = b""
    for chunk in chunks:
        new, written = step(conn, chunk)
        events += [norm_event(e) for e in new]
        out += written
    return events, out


def _check_documented(conn: BaseConnection, events: list[ev.Event], out: bytes) -> None:
    """Only documented events; at most one close, last; close codes are documented ones."""
    assert all(isinstance(e, DOCUMENTED_EVENTS) for e in events), events
    closes = [e for e in events if isinstance(e, ev.ConnectionClosed)]
    assert len(closes) <= 1
    if closes:
        assert events[-1] is closes[0]
        closed = closes[0]
        assert conn.status is Status.CLOSED
        if closed.by_peer:
            assert closed.error is None
            assert fr.valid_close_code(closed.code) or closed.code == fr.CLOSE_NO_STATUS
        else:
            assert closed.code in FAIL_CODES, closed
            assert closed.error is not None
        if not conn.is_client or not closed.by_peer:
            assert conn.should_close_transport()
    else:
        assert conn.status is Status.RUNNING
        assert not conn.should_close_transport()
    frames_out = decode_output(out, from_client=conn.is_client)
    ops = [op for op, _ in frames_out]
    assert all(op in (fr.OP_PONG, fr.OP_CLOSE) for op in ops), ops
    if fr.OP_CLOSE in ops:
        assert ops.index(fr.OP_CLOSE) == len(ops) - 1, "frames written after our Close"
        code, _ = fr.parse_close_payload(frames_out[-1][1])
        if closes and not closes[0].by_peer:
            assert code == closes[0].code


def _outputs_equal(side: str, a: bytes, b: bytes) -> None:
    if side == "server":
        assert a == b  # unmasked: byte for byte
    else:
        assert decode_output(a, from_client=True) == decode_output(b, from_client=True)


@pytest.mark.parametrize("side", SIDES)
@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_same_events_and_bytes_for_any_split(side: str, data: st.DataObject) -> None:
    stream = data.draw(peer_streams(client_to_server=side == "server"), label="stream")
    chunks = data.draw(splits(stream), label="chunks")
    one = _feed(_new(side), [stream] if stream else [])
    bytewise = _feed(_new(side), [stream[i : i + 1] for i in range(len(stream))])
    split = _feed(_new(side), chunks)
    assert bytewise[0] == one[0]
    assert split[0] == one[0]
    _outputs_equal(side, bytewise[1], one[1])
    _outputs_equal(side, split[1], one[1])


@pytest.mark.parametrize("side", SIDES)
@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_peer_streams_give_documented_outcomes(side: str, data: st.DataObject) -> None:
    stream = data.draw(peer_streams(client_to_server=side == "server"), label="stream")
    conn = _new(side, max_message_size=4096)
    events: list[ev.Event] = []
    out = b""
    for chunk in data.draw(splits(stream), label="chunks"):
        new, written = step(conn, chunk)
        events += new
        out += written
    _check_documented(conn, events, out)


@pytest.mark.parametrize("side", SIDES)
@settings(deadline=None, max_examples=300)
@given(chunks=st.lists(st.binary(min_size=1, max_size=64), max_size=8))
def test_arbitrary_bytes_after_handshake_never_raise(side: str, chunks: list[bytes]) -> None:
    conn = _new(side)
    events: list[ev.Event] = []
    out = b""
    for chunk in chunks:
        new, written = step(conn, chunk)
        events += new
        out += written
    _check_documented(conn, events, out)


@pytest.mark.parametrize("side", SIDES)
@settings(deadline=None, max_examples=200)
@given(
    limit=st.integers(0, 70_000),
    excess=st.integers(1, (1 << 63) - 1),
    opcode=st.sampled_from([fr.OP_BINARY, fr.OP_TEXT]),
)
def test_oversized_length_header_fails_with_1009_before_the_payload(
    side: str, limit: int, excess: int, opcode: int
) -> None:
    masked = side == "server"
    conn = _new(side, max_message_size=limit)
    length = min(limit + excess, (1 << 63) - 1)
    header = fr.frame_header(opcode, length, masked=masked) + (MASK_KEY if masked else b"")
    conn.receive_data(header)  # not one payload byte follows
    (closed,) = conn.events()
    assert isinstance(closed, ev.ConnectionClosed)
    assert (closed.code, closed.by_peer) == (fr.CLOSE_TOO_BIG, False)
    assert decode_output(conn.data_to_send(), from_client=not masked) == [
        (fr.OP_CLOSE, fr.close_payload(fr.CLOSE_TOO_BIG, closed.reason))
    ]
    assert conn.status is Status.CLOSED and conn.should_close_transport()


@pytest.mark.parametrize("side", SIDES)
def test_fragments_over_the_limit_fail_before_the_continuation_payload(side: str) -> None:
    masked = side == "server"
    conn = _new(side, max_message_size=1000)
    conn.receive_data(frame(fr.OP_BINARY, b"a" * 600, masked=masked, fin=False))
    assert conn.events() == []
    conn.receive_data(
        fr.frame_header(fr.OP_CONTINUATION, 600, masked=masked) + (MASK_KEY if masked else b"")
    )
    (closed,) = conn.events()
    assert isinstance(closed, ev.ConnectionClosed) and closed.code == fr.CLOSE_TOO_BIG


@pytest.mark.parametrize("side", SIDES)
def test_message_at_the_limit_is_accepted(side: str) -> None:
    masked = side == "server"
    conn = _new(side, max_message_size=300, raw=True)
    conn.receive_data(frame(fr.OP_BINARY, b"a" * 300, masked=masked))
    assert conn.events() == [ev.RawMessage(fr.OP_BINARY, b"a" * 300)]


# ------------------------------------------------------------------ HTTP phase
_HTTP_PIECES = [
    b"GET ",
    b"POST ",
    b"/ws",
    b"/other",
    b"?q=1",
    b" HTTP/1.1\r\n",
    b" HTTP/1.0\r\n",
    b"Host: x\r\n",
    b"Upgrade: websocket\r\n",
    b"Connection: Upgrade\r\n",
    b"Connection: close\r\n",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    b"Sec-WebSocket-Key: bad\r\n",
    b"Sec-WebSocket-Version: 13\r\n",
    b"Sec-WebSocket-Version: 8\r\n",
    b"Content-Length: 3\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"3\r\nabc\r\n0\r\n\r\n",
    b"\r\n",
    b"\n",
    b": ",
    b"\x00\xff",
    b"abc",
]
http_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(_HTTP_PIECES), max_size=20).map(b"".join),
)


def _drive_http(conn: ServerConnection, chunks: list[bytes]) -> tuple[list[ev.Event], bytes]:
    events: list[ev.Event] = []
    out = b""
    for chunk in chunks:
        conn.receive_data(chunk)
        new = conn.events()
        events += new
        for e in new:
            if isinstance(e, ev.HttpRequest) and conn.status is Status.NEW:
                conn.send_http_response(404, body=b"no route\n")
        conn.apply_pending()
        out += conn.data_to_send()
    return events, out


@settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_http_phase_never_raises(data: st.DataObject) -> None:
    raw = data.draw(http_bytes, label="raw")
    chunks = data.draw(splits(raw), label="chunks")
    conn = ServerConnection(max_request_size=512, max_http_body=64)
    events, out = _drive_http(conn, chunks)
    assert all(isinstance(e, DOCUMENTED_EVENTS) for e in events)
    if conn.status is Status.CLOSED:
        # An error response ends it (or our answer to a request that closes).
        assert conn.should_close_transport()
        statuses = [int(line.split(b" ")[1]) for line in _status_lines(out)]
        assert statuses and 400 <= statuses[-1] < 500
        assert isinstance(events[-1], ev.ConnectionClosed)
    elif conn.status is Status.NEW:
        assert not conn.should_close_transport()
        assert not any(isinstance(e, ev.ConnectionClosed) for e in events)
    else:  # a valid upgrade assembled from the pieces
        assert conn.status is Status.RUNNING
        assert any(isinstance(e, ev.Connected) for e in events)
        assert b"HTTP/1.1 101 Switching Protocols\r\n" in out
    conn.receive_eof()
    assert conn.status is Status.CLOSED and conn.should_close_transport()
    assert all(isinstance(e, DOCUMENTED_EVENTS) for e in conn.events())


_RESPONSE_PIECES = [
    b"HTTP/1.1 101 Switching Protocols\r\n",
    b"HTTP/1.1 404 Not Found\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n",
    b"Upgrade: websocket\r\n",
    b"Connection: Upgrade\r\n",
    b"Sec-WebSocket-Accept: " + accept_token(WS_KEY).encode() + b"\r\n",
    b"Sec-WebSocket-Accept: wrong\r\n",
    b"Content-Length: 4\r\n",
    b"body",
    b"\r\n",
    b"\x00\xff",
]
response_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(_RESPONSE_PIECES), max_size=12).map(b"".join),
)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_client_upgrade_phase_never_raises(data: st.DataObject) -> None:
    raw = data.draw(response_bytes, label="raw")
    conn = ClientConnection("127.0.0.1:1", key=WS_KEY)
    conn.data_to_send()
    events: list[ev.Event] = []
    for chunk in data.draw(splits(raw), label="chunks"):
        new, out = step(conn, chunk)
        events += new
        if conn.status is not Status.RUNNING:
            assert out == b""  # nothing but the request before the upgrade
    assert all(isinstance(e, DOCUMENTED_EVENTS) for e in events)
    if conn.status is Status.CLOSED:
        assert conn.should_close_transport()
        assert any(isinstance(e, ev.ConnectionClosed) for e in events)
    elif conn.status is Status.NEW:
        assert events == [] and not conn.should_close_transport()
    else:
        assert isinstance(events[0], ev.Connected)
    conn.receive_eof()
    assert conn.status is Status.CLOSED and conn.should_close_transport()
    assert all(isinstance(e, DOCUMENTED_EVENTS) for e in conn.events())


def _status_lines(out: bytes) -> list[bytes]:
    return [line for line in out.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (UPGRADE_REQUEST.replace(b"Version: 13", b"Version: 8"), 426),
        (UPGRADE_REQUEST.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short"), 400),
        (b"GET /" + b"a" * 600 + b" HTTP/1.1\r\n", 431),
    ],
)
def test_bad_requests_get_a_4xx_and_close(request_bytes: bytes, status: int) -> None:
    conn = ServerConnection(max_request_size=512)
    conn.receive_data(request_bytes)
    (closed,) = conn.events()
    assert isinstance(closed, ev.ConnectionClosed) and closed.code == status
    assert conn.data_to_send().startswith(b"HTTP/1.1 %d " % status)
    assert conn.should_close_transport()


@pytest.mark.parametrize("make", [lambda: ServerConnection(), lambda: client_running()])
def test_empty_receive_data_is_a_no_op(make: Callable[[], BaseConnection]) -> None:
    conn = make()
    status = conn.status
    conn.receive_data(b"")
    assert conn.status is status and conn.events() == []
    assert not conn.should_close_transport()


def test_partial_request_waits_for_more() -> None:
    conn = ServerConnection()
    for i in range(len(UPGRADE_REQUEST) - 1):
        conn.receive_data(UPGRADE_REQUEST[i : i + 1])
        assert conn.status is Status.NEW and conn.data_to_send() == b""
    conn.receive_data(UPGRADE_REQUEST[-1:])
    assert conn.status is Status.RUNNING


def test_empty_receive_data_is_a_no_op_for_a_new_client() -> None:
    conn = ClientConnection("127.0.0.1:1")
    conn.data_to_send()
    conn.receive_data(b"")
    assert conn.status is Status.NEW and conn.events() == []
    conn.receive_data(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    rejected, closed = conn.events()
    assert isinstance(rejected, ev.HandshakeRejected) and rejected.status == 404
    assert isinstance(closed, ev.ConnectionClosed)


@pytest.mark.parametrize("side", SIDES)
@settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_handshake_and_frames_in_any_split(side: str, data: st.DataObject) -> None:
    """Frames that arrive in the same read as the upgrade are not lost or reordered."""
    stream = data.draw(peer_streams(client_to_server=side == "server"), label="stream")
    head = UPGRADE_REQUEST if side == "server" else UPGRADE_RESPONSE
    whole = head + stream
    chunks = data.draw(splits(whole), label="chunks")

    def fresh() -> BaseConnection:
        if side == "server":
            return ServerConnection(registry=REGISTRY)
        conn = ClientConnection("127.0.0.1:1", registry=REGISTRY, key=WS_KEY)
        conn.data_to_send()
        return conn

    one = _feed(fresh(), [whole])
    split = _feed(fresh(), chunks)
    assert split[0] == one[0]
    assert one[0][0][0] == "Connected"
    _outputs_equal(side, split[1], one[1])
    after_handshake = _feed(_new(side), [stream] if stream else [])
    assert one[0][1:] == after_handshake[0]


def test_receive_data_never_calls_out_every_message_is_an_event() -> None:
    """No callback runs mid-read: messages, pings and commands come back from events(), in order."""
    from goomerang_proto import Message
    from goomerang_proto.codec import pack
    from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

    conn = server_running()
    assert not hasattr(conn, "on_message")
    body = [pack(Message(MessageV1(message=t))) for t in ("a", "b", "c")]
    chunk = (
        frame(fr.OP_BINARY, body[0], masked=True)
        + frame(fr.OP_BINARY, body[1], masked=True)
        + frame(fr.OP_PING, b"p", masked=True)
        + frame(fr.OP_BINARY, body[2], masked=True)
    )
    conn.receive_data(chunk)
    got = [
        e.message.payload.message if isinstance(e, ev.MessageReceived) else type(e).__name__
        for e in conn.events()
    ]
    assert got == ["a", "b", "PingReceived", "c"]
