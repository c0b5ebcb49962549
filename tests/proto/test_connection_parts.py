"""The connection's parts (deadlines.py, flow.py, output.py, connection.py): who holds what."""

from __future__ import annotations

import pytest

from goomerang_proto import BaseConnection, ClientConnection, ServerConnection
from goomerang_proto.deadlines import Deadlines
from goomerang_proto.flow import FlowControl
from goomerang_proto.output import Output

pytestmark = pytest.mark.timeout(10)


def test_the_parts_form_one_chain_with_flow_control_nearest_the_connection() -> None:
    # single inheritance (mypyc), and the order its docstring gives: the per-write
    # flow-control calls walk the fewest MRO steps in the compiled build
    assert BaseConnection.__mro__ == (BaseConnection, Output, FlowControl, Deadlines, object)
    for cls in (ServerConnection, ClientConnection):
        assert cls.__mro__[1:] == BaseConnection.__mro__


PARTS = {
    Deadlines: {"get_timer", "handle_timer", "close_expected", "_give_up", "_closing", "_running"},
    FlowControl: {"buffered_amount", "set_transport_buffer_size", "is_writable", "should_read"},
    Output: {"send", "send_bytes", "send_raw", "ping", "close", "fail", "_queued", "_over_cap"},
    BaseConnection: {
        "receive_data",
        "receive_eof",
        "abort",
        "events",
        "has_events",
        "data_to_send",
        "apply_pending",
        "should_close_transport",
        "should_abort_transport",
        "transport_closed",
        "max_message_size",
        "_closed",
        "_on_frames",
    },
}


@pytest.mark.parametrize("part", list(PARTS), ids=lambda c: c.__name__)
def test_each_part_defines_its_own_methods(part: type[Deadlines]) -> None:
    missing = {name for name in PARTS[part] if name not in vars(part)}
    assert not missing, f"{part.__name__} does not define {sorted(missing)}"


def test_a_fresh_connection_sets_every_part_up() -> None:
    conn = ServerConnection(handshake_timeout=5.0, high_water=1000, now=10.0)
    assert conn.get_timer() == 15.0  # deadlines
    assert conn.low_water == 250 and conn.is_writable() and conn.should_read()  # flow control
    assert conn.buffered_amount == 0 and conn.data_to_send() == b""  # output
