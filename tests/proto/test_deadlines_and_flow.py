"""The engine's deadlines (get_timer/handle_timer) and flow control, on a virtual clock."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import (
    REGISTRY,
    UPGRADE_REQUEST,
    client_running,
    decode_output,
    frame,
    server_running,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goomerang_proto import ConnectionLost, HandshakeError, Message, NotRunning
from goomerang_proto import events as ev
from goomerang_proto import frames as fr
from goomerang_proto.pb import goomerang_example_pb2 as ex
from goomerang_proto.server_connection import ServerConnection
from goomerang_proto.status import Status

ROOT = Path(__file__).resolve().parents[2]


def _closed(events: list[ev.Event]) -> ev.ConnectionClosed:
    (closed,) = [e for e in events if isinstance(e, ev.ConnectionClosed)]
    return closed


def _msg(size: int = 10) -> Message[Any]:
    return Message(ex.MessageV1(message="x" * size))


# ------------------------------------------------------------------ deadlines
def test_handshake_deadline_starts_at_construction_and_aborts() -> None:
    conn = ServerConnection(registry=REGISTRY, handshake_timeout=2.0, now=100.0)
    assert conn.get_timer() == 102.0
    conn.receive_data(UPGRADE_REQUEST[:20], now=101.0)  # half a request head
    conn.handle_timer(101.99)
    assert conn.status is Status.NEW and not conn.should_abort_transport()
    conn.handle_timer(102.0)
    assert conn.status is Status.CLOSED
    closed = _closed(conn.events())
    assert closed.code == 1006 and isinstance(closed.error, HandshakeError)
    assert conn.should_abort_transport() and conn.get_timer() is None


def test_handshake_deadline_holds_until_the_upgrade_is_accepted() -> None:
    """A slow authenticate (auto_accept=False, answered late) is still bounded."""
    conn = ServerConnection(registry=REGISTRY, handshake_timeout=1.0, auto_accept=False, now=0.0)
    conn.receive_data(UPGRADE_REQUEST, now=0.1)
    assert [type(e) for e in conn.events()] == [ev.HandshakeRequest]
    assert conn.get_timer() == 1.0
    conn.handle_timer(1.0)
    assert conn.status is Status.CLOSED and conn.should_abort_transport()


def test_accept_stops_the_handshake_deadline_and_starts_keepalive() -> None:
    conn = ServerConnection(
        registry=REGISTRY, handshake_timeout=1.0, ping_interval=5.0, ping_timeout=2.0, now=0.0
    )
    conn.receive_data(UPGRADE_REQUEST, now=0.5)
    assert conn.status is Status.RUNNING
    conn.data_to_send()
    assert conn.get_timer() == 5.5
    conn.handle_timer(5.5)
    assert decode_output(conn.data_to_send(), from_client=False) == [(fr.OP_PING, b"ping")]
    assert conn.get_timer() == 7.5  # the pong deadline comes before the next ping (10.5)
    conn.receive_data(frame(fr.OP_PONG, b"ping", masked=True), now=6.0)
    assert conn.get_timer() == 10.5
    conn.handle_timer(10.5)
    conn.data_to_send()
    conn.handle_timer(12.5)
    closed = _closed(conn.events())
    assert closed.code == 1006 and isinstance(closed.error, ConnectionLost)
    assert conn.should_abort_transport()


def test_pong_deadline_is_not_pushed_back_by_later_pings() -> None:
    conn = client_running(ping_interval=1.0, ping_timeout=2.5, now=0.0)
    conn.handle_timer(1.0)
    conn.handle_timer(2.0)
    conn.handle_timer(3.0)
    assert conn.status is Status.RUNNING
    conn.handle_timer(3.5)
    assert conn.status is Status.CLOSED and conn.should_abort_transport()


def test_close_deadline_aborts_whatever_the_peer_does() -> None:
    conn = server_running(close_timeout=3.0)
    conn.close(1000, now=10.0)
    assert conn.status is Status.CLOSING and conn.get_timer() == 13.0
    conn.handle_timer(13.0)
    assert conn.status is Status.CLOSED and conn.should_abort_transport()
    assert _closed(conn.events()).code == 1006


def test_close_deadline_covers_a_transport_close_the_peer_never_reads() -> None:
    """The peer's Close was answered, TCP close requested; it still has close_timeout."""
    conn = server_running(close_timeout=1.0)
    conn.receive_data(frame(fr.OP_CLOSE, b"\x03\xe8", masked=True), now=4.0)
    assert conn.should_close_transport() and not conn.should_abort_transport()
    assert conn.get_timer() == 5.0
    conn.handle_timer(5.0)
    assert conn.should_abort_transport()
    conn.transport_closed()
    assert conn.get_timer() is None


def test_no_deadline_without_options() -> None:
    conn = server_running()
    conn.close()
    assert conn.get_timer() is None


def test_calls_without_now_use_the_latest_now() -> None:
    conn = server_running(close_timeout=2.0)
    conn.handle_timer(50.0)
    conn.close()
    assert conn.get_timer() == 52.0


# --------------------------------------------------------------- flow control
def test_replies_to_a_non_reader_pause_reading_until_low_water() -> None:
    conn = server_running(high_water=1000, low_water=100)
    for _ in range(20):
        conn.send(_msg(100), in_response=True)
    assert not conn.should_read() and not conn.is_writable()
    conn.data_to_send()
    conn.set_transport_buffer_size(2500)  # the peer reads nothing
    assert not conn.should_read()
    conn.set_transport_buffer_size(500)  # between the marks: still paused (hysteresis)
    assert not conn.should_read()
    conn.set_transport_buffer_size(100)
    assert conn.should_read() and conn.is_writable()


def test_application_sends_make_senders_wait_but_never_pause_reading() -> None:
    conn = client_running(high_water=1000)
    for _ in range(20):
        conn.send(_msg(100))
    assert not conn.is_writable() and conn.should_read()
    conn.data_to_send()
    conn.set_transport_buffer_size(0)
    assert conn.is_writable()


def test_pongs_answer_every_ping_while_writable() -> None:
    """Autobahn 2.10: ten Pings, ten Pongs with their payloads."""
    conn = server_running()
    pings = b"".join(frame(fr.OP_PING, b"p%d" % i, masked=True) for i in range(10))
    conn.receive_data(pings)
    out = decode_output(conn.data_to_send(), from_client=False)
    assert out == [(fr.OP_PONG, b"p%d" % i) for i in range(10)]


def test_pongs_coalesce_above_high_water() -> None:
    """RFC 6455 5.5.3: only the latest Ping is answered while output is backed up."""
    conn = server_running(high_water=1000)
    conn.set_transport_buffer_size(0)  # the 101 response was written
    conn.set_transport_buffer_size(5000)
    pings = b"".join(frame(fr.OP_PING, b"p%d" % i, masked=True) for i in range(1000))
    conn.receive_data(pings)
    assert conn.should_read()  # pongs never pause reading
    assert conn.data_to_send() == b""
    assert conn.buffered_amount == 5000
    conn.set_transport_buffer_size(0)
    assert decode_output(conn.data_to_send(), from_client=False) == [(fr.OP_PONG, b"p999")]


def test_hard_cap_fails_the_connection_with_1008_and_aborts() -> None:
    conn = server_running(high_water=1000, max_buffered=4000)
    conn.send(_msg(100), in_response=True)
    conn.data_to_send()
    conn.set_transport_buffer_size(4001)
    with pytest.raises(NotRunning):
        conn.send(_msg(100), in_response=True)
    closed = _closed(conn.events())
    assert closed.code == 1008 and not closed.by_peer
    assert conn.should_abort_transport()


def test_prepared_frame_over_the_cap_is_refused() -> None:
    conn = server_running(max_buffered=10)
    assert conn.send_prepared(b"\x82\x01x")
    conn.set_transport_buffer_size(11)
    assert not conn.send_prepared(b"\x82\x01x")
    assert conn.status is Status.CLOSED and conn.should_abort_transport()


# ------------------------------------------------------------ state machine
class _Model:
    """What a driver would see, checked after each step."""

    def __init__(self) -> None:
        self.now = 0.0
        self.conn = server_running(
            ping_interval=1.0,
            ping_timeout=0.5,
            close_timeout=0.7,
            high_water=500,
            low_water=100,
            max_buffered=5000,
        )


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0.0, 2.0)),
        st.tuples(st.just("ping"), st.integers(0, 5)),
        st.tuples(st.just("pong"), st.just(0)),
        st.tuples(st.just("send"), st.integers(0, 300)),
        st.tuples(st.just("reply"), st.integers(0, 300)),
        st.tuples(st.just("buffer"), st.integers(0, 6000)),
        st.tuples(st.just("close"), st.just(0)),
    ),
    max_size=40,
)


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_deadlines_and_flow_invariants(steps: list[tuple[str, Any]]) -> None:
    """Any interleaving: timers never lie in the past, at most one Pong is held, bytes add up."""
    m = _Model()
    conn = m.conn
    for op, arg in steps:
        try:
            if op == "advance":
                m.now += arg
                at = conn.get_timer()
                if at is not None and at <= m.now:
                    conn.handle_timer(m.now)
            elif op == "ping":
                conn.receive_data(frame(fr.OP_PING, bytes(arg), masked=True), now=m.now)
            elif op == "pong":
                conn.receive_data(frame(fr.OP_PONG, b"ping", masked=True), now=m.now)
            elif op in ("send", "reply"):
                conn.send(_msg(arg), in_response=op == "reply")
            elif op == "buffer":
                conn.set_transport_buffer_size(arg)
            else:
                conn.close(now=m.now)
        except NotRunning:
            assert conn.status is not Status.RUNNING
        except Exception as exc:  # Closing is the other documented refusal
            assert type(exc).__name__ == "Closing", exc
        at = conn.get_timer()
        assert at is None or at > m.now or op != "advance"
        assert conn.buffered_amount >= 0
        if conn.status is Status.CLOSED and conn.should_abort_transport():
            assert conn.get_timer() is None
        assert conn._held_pong is None or len(conn._held_pong) <= 2 + 125
        if conn.should_read() is False:
            assert not conn.is_writable()
        conn.events()
    out = conn.data_to_send()
    assert isinstance(out, bytes)


# ----------------------------------------------------------- status changes
def test_every_engine_status_change_goes_through_the_table() -> None:
    """No ``x.status = ...`` anywhere in the engine outside status.py (h11's one-table rule)."""
    offenders = []
    for path in sorted((ROOT / "goomerang_proto").glob("*.py")):
        if path.name == "status.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "status":
                    # HandshakeError.status and HandshakeRejected.status are HTTP codes
                    if path.name in ("errors.py", "events.py"):
                        continue
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_the_ast_check_would_catch_a_direct_assignment() -> None:
    tree = ast.parse("self.status = Status.CLOSED")
    (node,) = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)]
    (target,) = node.targets
    assert isinstance(target, ast.Attribute) and target.attr == "status"


@pytest.mark.parametrize("pipelined", [b"", b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n" * 3])
def test_a_plain_request_waiting_for_its_answer_pauses_reading(pipelined: bytes) -> None:
    """The HTTP phase holds one request: no reading until send_http_response answers it;
    then the requests pipelined behind it are taken one at a time the same way."""
    conn = ServerConnection(registry=REGISTRY)
    assert conn.should_read()
    conn.receive_data(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" + pipelined, 0.0)
    paths = []
    while True:
        requests = [e for e in conn.events() if isinstance(e, ev.HttpRequest)]
        if not requests:
            break
        (request,) = requests
        paths.append(request.path)
        assert not conn.should_read()
        conn.send_http_response(404, now=0.0)
    assert paths == ["/a"] + ["/b"] * pipelined.count(b"GET ")
    assert conn.should_read()


def test_an_upgrade_waiting_for_accept_pauses_reading() -> None:
    conn = ServerConnection(registry=REGISTRY, auto_accept=False)
    conn.receive_data(UPGRADE_REQUEST, 0.0)
    assert any(isinstance(e, ev.HandshakeRequest) for e in conn.events())
    assert not conn.should_read()
    conn.accept(now=0.0)
    assert conn.status is Status.RUNNING and conn.should_read()
