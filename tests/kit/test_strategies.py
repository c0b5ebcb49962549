"""The public strategies and the wire helpers, checked against the engine (property tests)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goomerang_proto import GoomerangError, Message, Registry, codec
from goomerang_proto import frames as fr
from goomerang_proto.pb import goomerang_backplane_pb2 as bp
from goomerang_proto.pb import goomerang_example_pb2 as ex
from goomerang_proto.pb import goomerang_frame_pb2 as pb
from goomerang_proto.testing import strategies as gs
from goomerang_proto.testing.wire import (
    expected_accept,
    parse_frame,
    parse_http_head,
    upgrade_request,
)

REGISTRY = Registry(ex.MessageV1)


@settings(deadline=None)  # loaded CI machines: no per-example deadline
@given(gs.protobuf_messages(pb.Frame))
def test_protobuf_messages_cover_maps_messages_and_scalars_and_round_trip(msg: pb.Frame) -> None:
    assert pb.Frame.FromString(msg.SerializeToString()) == msg


@settings(deadline=None)  # loaded CI machines: no per-example deadline
@given(gs.protobuf_messages(bp.Envelope))
def test_protobuf_messages_draw_enum_values(msg: bp.Envelope) -> None:
    assert msg.op in bp.Envelope.Op.values()
    assert bp.Envelope.FromString(msg.SerializeToString()) == msg


@settings(deadline=None)  # loaded CI machines: no per-example deadline
@given(gs.messages(ex.MessageV1, ex.ReplyV1))
def test_messages_pack_and_unpack(message: Message[Any]) -> None:
    registry = Registry(ex.MessageV1, ex.ReplyV1)
    back = codec.unpack(codec.pack(message), registry)
    assert back.payload == message.payload and back.headers == message.headers


@settings(deadline=None)  # loaded CI machines: no per-example deadline
@given(gs.envelopes(client_to_server=True))
def test_envelopes_decode_or_fail_with_a_goomerang_error(data: bytes) -> None:
    try:
        codec.unpack(data, REGISTRY)
    except GoomerangError:
        pass


@settings(deadline=None)  # loaded CI machines: no per-example deadline
@given(st.binary(max_size=200), st.data())
def test_splits_rejoin_into_the_stream(data: bytes, draw: st.DataObject) -> None:
    parts = draw.draw(gs.splits(data))
    assert b"".join(parts) == data and all(parts)


@settings(max_examples=200, deadline=None)
@given(st.lists(gs.ws_frames(client_to_server=True), max_size=5))
def test_ws_frames_are_well_formed_for_the_engine_reader(items: list[bytes]) -> None:
    reader = fr.FrameReader(expect_masked=True, max_message_size=1 << 20)
    out: list[tuple[int, bytes]] = []
    reader.feed(b"".join(items), out)  # raises FrameError on a malformed frame
    assert reader.buffered == 0


@settings(deadline=None)  # loaded CI machines: no per-example deadline
@given(gs.protocol_violations(client_to_server=True))
def test_protocol_violations_are_refused_by_the_engine_reader(data: bytes) -> None:
    reader = fr.FrameReader(expect_masked=True, max_message_size=1 << 20)
    with pytest.raises(fr.FrameError):
        reader.feed(data, [])


@settings(deadline=None)  # loaded CI machines: no per-example deadline
@given(
    st.sampled_from([fr.OP_BINARY, fr.OP_TEXT, fr.OP_PING, fr.OP_CONTINUATION, 0x3, 0xB]),
    st.binary(max_size=70000),
    st.booleans(),
    st.booleans(),
    st.binary(min_size=4, max_size=4),
    st.integers(0, 7),
)
def test_parse_frame_reads_back_what_build_frame_wrote(
    opcode: int, payload: bytes, masked: bool, fin: bool, key: bytes, rsv: int
) -> None:
    raw = bytearray(fr.build_frame(opcode, payload, mask=masked, mask_key=key, fin=fin))
    raw[0] |= rsv << 4
    for cut in (1, len(raw) // 2, len(raw) - 1):
        if 0 < cut < len(raw):
            assert parse_frame(raw[:cut]) is None
    got = parse_frame(raw + b"tail")
    assert got is not None
    frame, used = got
    assert used == len(raw) and frame.raw == bytes(raw)
    assert (frame.opcode, frame.payload, frame.masked, frame.fin, frame.rsv) == (
        opcode,
        payload,
        masked,
        fin,
        rsv,
    )


@settings(deadline=None)  # loaded CI machines: no per-example deadline
@given(st.binary(max_size=64))
def test_parse_frame_never_fails_on_garbage_below_its_limit(data: bytes) -> None:
    try:
        parse_frame(data, max_length=1 << 64)
    except ValueError:
        pytest.fail("parse_frame raised")


def test_parse_frame_refuses_lengths_over_its_limit() -> None:
    with pytest.raises(ValueError):
        parse_frame(fr.frame_header(fr.OP_BINARY, 1 << 40), max_length=1 << 30)


def test_upgrade_request_and_http_head() -> None:
    request = upgrade_request(
        "h:1", omit=("Upgrade",), version=None, headers=(("Sec-WebSocket-Key", "x"),)
    )
    assert b"Upgrade:" not in request and b"Sec-WebSocket-Version" not in request
    assert request.count(b"Sec-WebSocket-Key") == 2
    assert expected_accept() == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3
    head = parse_http_head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nrest")
    assert head is not None and head.status == 101 and head.get("upgrade") == ["websocket"]
    assert parse_http_head(b"HTTP/1.1 101 Swi") is None
    with pytest.raises(ValueError):
        parse_http_head(b"SSH-2.0\r\n\r\n")
