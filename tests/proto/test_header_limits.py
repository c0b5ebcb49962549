"""Header entries are bounded per received message (``MAX_HEADERS``) and counted in the
backlog bounds (``held_size``): a peer cannot turn a message under ``max_message_size``
into tens of MiB of decoded dict (100,000 tiny headers in 1 MiB decode to about 10 MB).
"""

from __future__ import annotations

import pytest
from engine_helpers import server_running
from hypothesis import given
from hypothesis import strategies as st

from goomerang_proto import MalformedFrame, Message
from goomerang_proto import events as ev
from goomerang_proto.codec import more_headers_than, pack, pack_broadcast_cmd, pack_publish_cmd
from goomerang_proto.frames import OP_BINARY, build_frame
from goomerang_proto.message import HEADER_OVERHEAD, MAX_HEADERS, held_size
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1


def headers(n: int) -> dict[str, str]:
    return {f"{i:x}": "" for i in range(n)}


def received(data: bytes) -> list[ev.Event]:
    conn = server_running()
    conn.receive_data(build_frame(OP_BINARY, data, mask=True, mask_key=b"abcd"))
    return conn.events()


@pytest.mark.parametrize("count", [MAX_HEADERS, MAX_HEADERS + 1, 100_000])
def test_a_message_with_too_many_headers_is_dropped_and_reported(count: int) -> None:
    events = received(pack(Message(MessageV1(message="x"), headers(count))))
    if count <= MAX_HEADERS:
        (event,) = events
        assert isinstance(event, ev.MessageReceived) and len(event.message.headers) == count
    else:
        (event,) = events
        assert isinstance(event, ev.ErrorOccurred) and isinstance(event.error, MalformedFrame)
        assert f"{MAX_HEADERS} headers" in str(event.error)


@pytest.mark.parametrize("command", ["broadcast", "publish"])
def test_a_command_with_too_many_headers_is_dropped_and_reported(command: str) -> None:
    message = Message(MessageV1(message="x"), headers(MAX_HEADERS + 1))
    data = pack_broadcast_cmd(message) if command == "broadcast" else pack_publish_cmd("t", message)
    (event,) = received(data)
    assert isinstance(event, ev.ErrorOccurred) and isinstance(event.error, MalformedFrame)


@given(
    st.binary(max_size=64),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=20),
)
def test_held_size_counts_the_payload_and_every_header(body: bytes, hdrs: dict[str, str]) -> None:
    message = Message(MessageV1(message="x"), hdrs, payload_size=len(body))
    expected = len(body) + sum(len(k) + len(v) + HEADER_OVERHEAD for k, v in hdrs.items())
    assert held_size(message) == expected


@given(
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=0, max_value=40),
    st.binary(max_size=300),
    st.booleans(),
)
def test_more_headers_than_agrees_with_the_decoder(
    count: int, limit: int, body: bytes, sync: bool
) -> None:
    """The undecoded count (top-level field 6) matches what protobuf decodes, for any
    limit, payload bytes (0x32 bytes in them included) and envelope fields."""
    message = Message(MessageV1(message=body.hex()), headers(count))
    data = pack(message, uuid="u" * 36 if sync else "", is_sync=sync, creation_ns=10**18)
    assert more_headers_than(data, limit) == (count > limit)


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=5))
def test_more_headers_than_never_raises_on_garbage(data: bytes, limit: int) -> None:
    assert isinstance(more_headers_than(data, limit), bool)
