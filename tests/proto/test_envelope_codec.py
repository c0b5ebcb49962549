"""Envelope codec (goomerang_proto.codec): hand-written bytes versus the protobuf runtime."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from goomerang_proto import codec
from goomerang_proto.errors import MalformedFrame, UnknownKind
from goomerang_proto.message import Message
from goomerang_proto.pb import goomerang_example_pb2 as ex
from goomerang_proto.pb import goomerang_frame_pb2 as pb
from goomerang_proto.registry import Registry, kind_of

REGISTRY = Registry(ex.MessageV1, ex.ReplyV1)
MAX_NS = (1 << 63) - 1

texts = st.text(max_size=40)
headers_st = st.dictionaries(texts, texts, max_size=6)
one_header_st = st.dictionaries(texts, texts, max_size=1)
uuids = st.one_of(st.just(""), st.uuids().map(str), st.text(max_size=40))
# Creation times from the epoch up to the largest int64 nanosecond count, with
# the interesting edges (whole seconds, sub-second only) drawn often.
creation_st = st.one_of(
    st.just(0),
    st.integers(1, 999_999_999),
    st.integers(1, 9_223_372_036).map(lambda s: s * 1_000_000_000),
    st.integers(0, MAX_NS),
)
payload_cls = st.sampled_from([ex.MessageV1, ex.ReplyV1])


def _expected_frame(
    kind: str,
    payload: bytes,
    headers: dict[str, str],
    uuid: str,
    is_sync: bool,
    creation_ns: int,
) -> pb.Frame:
    frame = pb.Frame(
        uuid=uuid,
        kind=kind,
        payloadSize=len(payload),
        is_sync=is_sync,
        headers=headers,
        payload=payload,
    )
    if creation_ns:
        seconds, nanos = divmod(creation_ns, 1_000_000_000)
        frame.creation.seconds = seconds
        frame.creation.nanos = nanos
    return frame


@settings(deadline=None, max_examples=300)
@given(payload_cls, texts, headers_st, uuids, st.booleans(), creation_st)
def test_pack_unpack_round_trip(
    cls: Any, text: str, headers: dict[str, str], uuid: str, is_sync: bool, creation_ns: int
) -> None:
    msg = Message(cls(message=text), dict(headers))
    data = codec.pack(msg, uuid=uuid, is_sync=is_sync, creation_ns=creation_ns)
    got = codec.unpack(data, REGISTRY)
    assert type(got.payload) is cls
    assert got.payload.message == text
    assert got.kind == kind_of(cls)
    assert got.headers == headers
    assert got.uuid == uuid
    assert got.is_sync is is_sync
    assert got.creation_ns == creation_ns
    assert got.payload_size == len(msg.payload.SerializeToString())
    assert got == Message(cls(message=text), headers, uuid=uuid, is_sync=is_sync)


@settings(deadline=None, max_examples=300)
@given(payload_cls, texts, headers_st, uuids, st.booleans(), creation_st)
def test_pack_parses_to_the_same_fields_as_the_runtime(
    cls: Any, text: str, headers: dict[str, str], uuid: str, is_sync: bool, creation_ns: int
) -> None:
    payload = cls(message=text).SerializeToString()
    data = codec.pack_envelope(
        kind_of(cls), payload, headers, uuid=uuid, is_sync=is_sync, creation_ns=creation_ns
    )
    expected = _expected_frame(kind_of(cls), payload, headers, uuid, is_sync, creation_ns)
    assert pb.Frame.FromString(data) == expected


@settings(deadline=None, max_examples=300)
@given(payload_cls, texts, one_header_st, uuids, st.booleans(), creation_st)
def test_pack_is_byte_identical_to_the_runtime_for_at_most_one_header(
    cls: Any, text: str, headers: dict[str, str], uuid: str, is_sync: bool, creation_ns: int
) -> None:
    payload = cls(message=text).SerializeToString()
    data = codec.pack_envelope(
        kind_of(cls), payload, headers, uuid=uuid, is_sync=is_sync, creation_ns=creation_ns
    )
    expected = _expected_frame(kind_of(cls), payload, headers, uuid, is_sync, creation_ns)
    assert data == expected.SerializeToString()


@given(st.integers(0, (1 << 64) - 1))
@example(0)
@example((1 << 14) - 1)
@example(1 << 14)
@example((1 << 28) - 1)
@example(1 << 28)
@example(999_999_999)
@example((1 << 42) - 1)
@example(1 << 42)
@example((1 << 64) - 1)
def test_varint_matches_the_runtime(value: int) -> None:
    # Field 3 (payloadSize, int64) carries the value; compare the encodings.
    as_int64 = value - (1 << 64) if value >> 63 else value
    runtime = pb.Frame(payloadSize=as_int64).SerializeToString()
    if value:
        assert runtime == b"\x18" + codec.varint(value)
    if as_int64 < 0:
        assert codec.varint(as_int64) == codec.varint(value)


def test_plain_send_matches_the_protocol_example() -> None:
    msg = Message(ex.MessageV1(message="hello"), {"k": "v"})
    data = codec.pack(msg)
    assert data == (
        b"\x12\x1bgoomerang.example.MessageV1"
        + b"\x18\x07"
        + b"\x32\x06\x0a\x01k\x12\x01v"
        + b"\x3a\x07\x0a\x05hello"
    )


# ------------------------------------------------------------------ commands
@settings(deadline=None, max_examples=200)
@given(payload_cls, texts, headers_st, creation_st)
def test_broadcast_round_trip(
    cls: Any, text: str, headers: dict[str, str], creation_ns: int
) -> None:
    msg = Message(cls(message=text), dict(headers))
    frame = codec.decode_frame(codec.pack_broadcast_cmd(msg, creation_ns=creation_ns))
    assert frame.kind == codec.BROADCAST_CMD == "goomerang.protocol.BroadcastCmd"
    assert not frame.uuid and not frame.is_sync
    assert codec.frame_creation_ns(frame) == creation_ns
    assert dict(frame.headers) == {"message-" + k: v for k, v in headers.items()}
    cmd = pb.BroadcastCmd.FromString(frame.payload)
    assert frame.payloadSize == len(frame.payload)
    got = codec.decode_command_message(cmd.kind, cmd.message, dict(frame.headers), REGISTRY)
    assert got == msg
    assert got.payload_size == len(msg.payload.SerializeToString())


@settings(deadline=None, max_examples=200)
@given(texts, payload_cls, texts, headers_st, creation_st)
def test_publish_round_trip(
    topic: str, cls: Any, text: str, headers: dict[str, str], creation_ns: int
) -> None:
    msg = Message(cls(message=text), dict(headers))
    frame = codec.decode_frame(codec.pack_publish_cmd(topic, msg, creation_ns=creation_ns))
    assert frame.kind == codec.PUBLISH_CMD == "goomerang.protocol.PublishCmd"
    assert codec.frame_creation_ns(frame) == creation_ns
    cmd = pb.PublishCmd.FromString(frame.payload)
    assert cmd.topic == topic
    assert cmd.kind == kind_of(cls)
    got = codec.decode_command_message(cmd.kind, cmd.message, dict(frame.headers), REGISTRY)
    assert got == msg


@settings(deadline=None, max_examples=200)
@given(texts, creation_st, st.booleans())
def test_subscribe_and_unsubscribe_round_trip(topic: str, creation_ns: int, sub: bool) -> None:
    pack = codec.pack_subscribe_cmd if sub else codec.pack_unsubscribe_cmd
    cls = pb.SubscribeCmd if sub else pb.UnsubscribeCmd
    data = pack(topic, creation_ns=creation_ns)
    frame = codec.decode_frame(data)
    assert frame.kind == kind_of(cls)
    assert not frame.headers
    assert codec.frame_creation_ns(frame) == creation_ns
    assert cls.FromString(frame.payload).topic == topic
    # Byte-identical to the runtime (no headers, so no ordering question).
    assert (
        data
        == _expected_frame(
            kind_of(cls), cls(topic=topic).SerializeToString(), {}, "", False, creation_ns
        ).SerializeToString()
    )


@given(headers_st)
def test_strip_undoes_prefix(headers: dict[str, str]) -> None:
    assert codec.strip_command_headers(codec.prefix_headers(headers)) == headers


@given(headers_st)
def test_strip_keeps_only_prefixed_keys(headers: dict[str, str]) -> None:
    stripped = codec.strip_command_headers(headers)
    expected = {k[len("message-") :]: v for k, v in headers.items() if k.startswith("message-")}
    assert stripped == expected


def test_header_prefix_examples() -> None:
    assert codec.prefix_headers({"Key": "1", "": "2"}) == {"message-Key": "1", "message-": "2"}
    got = codec.strip_command_headers(
        {"message-Key": "1", "Key": "dropped", "Message-x": "dropped", "message-": "e"}
    )
    assert got == {"Key": "1", "": "e"}


def test_command_message_headers_are_stripped_on_decode() -> None:
    body = ex.MessageV1(message="x").SerializeToString()
    got = codec.decode_command_message(
        kind_of(ex.MessageV1), body, {"message-a": "1", "b": "2"}, REGISTRY
    )
    assert got.headers == {"a": "1"}


# ------------------------------------------------------------------- errors
def test_unknown_kind() -> None:
    data = codec.pack(Message(ex.BadReplyV1(message="x")))
    with pytest.raises(UnknownKind) as info:
        codec.unpack(data, REGISTRY)
    assert info.value.kind == "goomerang.example.BadReplyV1"
    body = ex.BadReplyV1(message="x").SerializeToString()
    with pytest.raises(UnknownKind):
        codec.decode_command_message("goomerang.example.BadReplyV1", body, {}, REGISTRY)


def test_payload_that_does_not_decode_is_malformed() -> None:
    data = codec.pack_envelope(kind_of(ex.MessageV1), b"\x0a\x05hi")  # truncated string
    with pytest.raises(MalformedFrame):
        codec.unpack(data, REGISTRY)
    data = codec.pack_envelope(kind_of(ex.MessageV1), b"\x0a\x01\xff")  # bad UTF-8
    with pytest.raises(MalformedFrame):
        codec.unpack(data, REGISTRY)


def test_envelope_with_bad_utf8_kind_is_malformed() -> None:
    with pytest.raises(MalformedFrame):
        codec.unpack(b"\x12\x01\xff", REGISTRY)


@settings(deadline=None, max_examples=500)
@given(st.binary(max_size=300))
def test_garbage_raises_only_documented_errors(data: bytes) -> None:
    try:
        got = codec.unpack(data, REGISTRY)
    except (MalformedFrame, UnknownKind):
        return
    assert got.kind in REGISTRY


@settings(deadline=None, max_examples=300)
@given(texts, headers_st, uuids, st.data())
def test_truncated_frames_are_malformed_or_decode(
    text: str, headers: dict[str, str], uuid: str, data: st.DataObject
) -> None:
    full = codec.pack(
        Message(ex.MessageV1(message=text), headers), uuid=uuid, creation_ns=123_456_789_000
    )
    cut = data.draw(st.integers(0, len(full) - 1))
    try:
        got = codec.unpack(full[:cut], REGISTRY)
    except (MalformedFrame, UnknownKind):
        return
    # A cut on a field boundary is a valid (shorter) Frame.
    assert got.kind == kind_of(ex.MessageV1)


@settings(deadline=None, max_examples=300)
@given(texts, headers_st, st.data())
def test_mutated_frames_raise_only_documented_errors(
    text: str, headers: dict[str, str], data: st.DataObject
) -> None:
    full = bytearray(codec.pack(Message(ex.MessageV1(message=text), headers), creation_ns=7))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(full) - 1))
        full[i] = data.draw(st.integers(0, 255))
    try:
        codec.unpack(bytes(full), REGISTRY)
    except (MalformedFrame, UnknownKind):
        pass


@given(
    st.integers(0, (1 << 62) - 1),
    st.lists(st.integers(0, 1 << 20), min_size=1, max_size=50),
)
def test_timestamps_close_together_match_the_runtime(base: int, steps: list[int]) -> None:
    # encode_timestamp reuses the bytes of the previous call within one
    # second and 16 us window: a run of nearby times must stay exact.
    now = base
    for step in steps:
        now += step
        frame = pb.Frame()
        seconds, nanos = divmod(now, 1_000_000_000)
        if now:
            frame.creation.seconds = seconds
            frame.creation.nanos = nanos
        assert codec.encode_timestamp(now) == frame.SerializeToString()


def test_timestamp_cache_is_safe_across_threads() -> None:
    """Threads encoding times of different seconds never mix their cached bytes."""
    import sys
    import threading

    def expected(ns: int) -> bytes:
        frame = pb.Frame()
        frame.creation.seconds, frame.creation.nanos = divmod(ns, 1_000_000_000)
        return frame.SerializeToString()

    bases = [1_700_000_000_500_000_000 + k * 7_777_777_777 for k in range(4)]
    wrong: list[int] = []

    def encode_many(base: int) -> None:
        for i in range(20_000):
            ns = base + i * 3
            if codec.encode_timestamp(ns) != expected(ns):
                wrong.append(ns)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        threads = [threading.Thread(target=encode_many, args=(b,)) for b in bases]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        sys.setswitchinterval(old)
    assert not any(t.is_alive() for t in threads)
    assert wrong == []


def _uncached_headers(headers: dict[str, str]) -> bytes:
    return b"".join(codec._header_entry(k, v) for k, v in headers.items())


@given(headers_st)
def test_headers_encode_the_same_from_the_cache(headers: dict[str, str]) -> None:
    """The per-entry cache of encoded headers changes no byte (first call, then cached)."""
    first = codec.encode_headers(headers)
    assert first == _uncached_headers(headers)
    assert codec.encode_headers(headers) == first


@given(one_header_st)
def test_one_header_is_byte_identical_to_the_runtime(headers: dict[str, str]) -> None:
    expected = pb.Frame(headers=headers).SerializeToString()
    assert codec.encode_headers(headers) == expected
    assert codec.encode_headers(headers) == expected  # from the cache


def test_header_cache_is_bounded_in_entries_and_entry_size() -> None:
    """Headers may come from the peer (an echo): the cache cannot grow without bound."""
    codec._HEADER_CACHE.clear()  # other tests filled it
    for i in range(codec._HEADER_CACHE_KEYS + 100):
        codec.encode_headers({f"key-{i}": "value", "same": f"value-{i}"})
    assert len(codec._HEADER_CACHE) <= codec._HEADER_CACHE_KEYS
    assert all(len(values) <= codec._HEADER_CACHE_VALUES for values in codec._HEADER_CACHE.values())
    assert len(codec._HEADER_CACHE["same"]) == codec._HEADER_CACHE_VALUES  # filled, then no more
    codec._HEADER_CACHE.clear()
    big = {"k": "v" * (codec._HEADER_CACHE_ENTRY_MAX + 1)}
    assert codec.encode_headers(big) == _uncached_headers(big)
    assert codec.encode_headers(big) == _uncached_headers(big)
    assert "k" not in codec._HEADER_CACHE


@pytest.mark.parametrize(
    "uuid", ["cccccccc-0000-4000-8000-000000000001", "é" * 36, "x" * 35, "x" * 37, "x" * 200]
)
def test_uuid_field_lengths_are_byte_identical_to_the_runtime(uuid: str) -> None:
    """36 characters is the common uuid (a fixed field head), not always 36 bytes (UTF-8)."""
    payload = ex.MessageV1(message="m").SerializeToString()
    message = Message(ex.MessageV1(message="m"), {"echo": "1"})
    got = codec.pack(message, uuid=uuid, is_sync=True, creation_ns=1_700_000_000_123_456_789)
    want = _expected_frame(
        kind_of(ex.MessageV1), payload, {"echo": "1"}, uuid, True, 1_700_000_000_123_456_789
    )
    assert got == want.SerializeToString()


non_str = st.one_of(
    st.integers(), st.none(), st.binary(max_size=4), st.lists(st.integers(), max_size=2)
)
bad_items = st.one_of(st.tuples(texts, non_str), st.tuples(non_str, texts))


@given(good=headers_st, bad=bad_items, cached=st.booleans())
def test_non_str_headers_raise_type_error_and_queue_nothing(
    good: dict[str, str], bad: tuple[Any, Any], cached: bool
) -> None:
    """``map<string, string>``: a key or value that is not a str is a TypeError from
    the encoder (hashable or not, the entry cached or not), and the engine queues nothing."""
    from tests.proto.engine_helpers import server_running

    if cached:  # the good entries are in the cache already
        codec.encode_headers(good)
    headers: dict[Any, Any] = {}
    try:
        headers.update(good)
        headers[bad[0]] = bad[1]
    except TypeError:  # an unhashable key cannot be put in a dict at all
        return
    with pytest.raises(TypeError, match="headers must map str to str"):
        codec.encode_headers(headers)
    conn = server_running()
    with pytest.raises(TypeError, match="headers must map str to str"):
        conn.send(Message(ex.MessageV1(message="x"), headers))
    assert conn.data_to_send() == b""
    assert conn.buffered_amount == 0
