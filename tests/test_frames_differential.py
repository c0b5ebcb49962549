"""Differential test: our frame codec against wsproto's, on arbitrary byte streams.

``goomerang_proto.frames.FrameReader`` (the fast codec) and wsproto's
frame-level parser (``wsproto.frame_protocol.FrameProtocol``, the oracle) are
fed the same bytes, in the same chunks, for both directions (server side:
masked frames expected; client side: unmasked). Both are reduced to the same
outcome: the messages (opcode and reassembled bytes), pings, pongs and the
close (code, reason) up to the first close, plus the close code of a failure
(1002 protocol error, 1007 invalid UTF-8). The rules:

* wsproto fails with code C: we fail with C after the same events.
* wsproto does not fail: we produce the same events and either do not fail
  or fail *earlier*, only while wsproto still holds an unfinished frame (we
  check everything a header decides as soon as the header is in, wsproto
  checks some of it when payload arrives; RFC 6455 asks to fail fast).
* Our outcome does not depend on how the stream is chunked.

Documented exception, narrowly: close code 1014 ("Bad Gateway", IANA
registered, accepted by Autobahn|Testsuite 7.9 and python-websockets) is
rejected by wsproto 1.3 (its ``CloseReason`` enum stops at 1013). We accept
it; the oracle is patched to accept it too, and only it.

Also: frames written by ``build_frame`` parse to the same result in both, and
frames written by wsproto parse in ours.
"""

from __future__ import annotations

import itertools
import os
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from wsproto.frame_protocol import CloseReason, Frame, FrameProtocol, Opcode, ParseFailed

from goomerang_proto import frames as frames_module
from goomerang_proto.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameReader,
    MaskKeys,
    build_frame,
    close_payload,
    masked_binary,
    parse_close_payload,
    unmask,
)

HUGE = 1 << 62  # wsproto has no size limit
Event = tuple[Any, ...]
Outcome = tuple[list[Event], int | None]

# ----------------------------------------------------------------- runners


def run_ours(chunks: list[bytes], *, client_side: bool) -> tuple[list[Event], int | None]:
    """Feed ``chunks`` to our FrameReader; return (events up to the first close, failure)."""
    reader = FrameReader(expect_masked=not client_side, max_message_size=HUGE)
    out: list[tuple[int, bytes]] = []
    failure: int | None = None
    for chunk in chunks:
        try:
            reader.feed(chunk, out)
        except FrameError as exc:
            failure = exc.code
            break
    events: list[Event] = []
    for opcode, payload in out:
        if opcode in (OP_TEXT, OP_BINARY):
            events.append(("message", opcode, payload))
        elif opcode == OP_PING:
            events.append(("ping", payload))
        elif opcode == OP_PONG:
            events.append(("pong", payload))
        else:
            assert opcode == OP_CLOSE
            events.append(("close", *parse_close_payload(payload)))
            # A connection stops at the first close (wsproto stops parsing there).
            return events, None
    return events, failure


def _accept_1014(proto: FrameProtocol) -> None:
    """The documented exception: let the oracle accept close code 1014 like us."""
    original = proto._process_close

    def process_close(frame: Frame) -> Frame:
        data = frame.payload
        assert isinstance(data, bytes | bytearray)
        if len(data) >= 2 and struct.unpack("!H", data[:2])[0] == 1014:
            try:
                reason = bytes(data[2:]).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ParseFailed(str(exc), CloseReason.INVALID_FRAME_PAYLOAD_DATA) from exc
            return Frame(frame.opcode, (1014, reason), frame.frame_finished, True)
        return original(frame)

    proto._process_close = process_close  # type: ignore[method-assign]


def run_wsproto(chunks: list[bytes], *, client_side: bool) -> tuple[list[Event], int | None, bool]:
    """Feed ``chunks`` to wsproto; return (events, failure, holds an unfinished frame)."""
    proto = FrameProtocol(client=client_side, extensions=[])
    _accept_1014(proto)
    events: list[Event] = []
    parts: list[bytes] = []
    failure: int | None = None
    closed = False
    try:
        for chunk in chunks:
            proto.receive_bytes(chunk)
            for frame in proto.received_frames():
                if frame.opcode is Opcode.CLOSE:
                    code, reason = frame.payload  # type: ignore[misc]
                    events.append(("close", int(code), reason))
                    closed = True
                elif frame.opcode is Opcode.PING:
                    events.append(("ping", bytes(frame.payload)))  # type: ignore[arg-type]
                elif frame.opcode is Opcode.PONG:
                    events.append(("pong", bytes(frame.payload)))  # type: ignore[arg-type]
                else:
                    # Text pieces come decoded (str), binary pieces as bytes;
                    # the opcode of every piece is the message's.
                    piece = frame.payload
                    parts.append(piece.encode() if isinstance(piece, str) else bytes(piece))  # type: ignore[arg-type]
                    if frame.message_finished:
                        events.append(("message", int(frame.opcode), b"".join(parts)))
                        parts = []
            if closed:
                break
    except ParseFailed as exc:
        failure = int(exc.code)
    decoder = proto._frame_decoder
    unfinished = decoder.header is not None or len(decoder.buffer) > decoder.buffer.bytes_used
    return events, failure, unfinished


def compare(stream: bytes, cuts: list[int], *, client_side: bool) -> None:
    """Feed ``stream`` cut at ``cuts`` to both; assert the rules of this module."""
    bounds = [0, *sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    ours = run_ours(chunks, client_side=client_side)
    theirs, their_failure, unfinished = run_wsproto(chunks, client_side=client_side)
    our_events, our_failure = ours
    assert our_events == theirs, (our_events, theirs, our_failure, their_failure)
    if their_failure is not None:
        assert our_failure == their_failure, (our_failure, their_failure)
    elif our_failure is not None:
        assert unfinished, f"we failed with {our_failure} where wsproto saw complete frames"
    if currently_in_test_context():
        event(f"wsproto failure: {their_failure}; ours: {our_failure}")
        event(
            f"events: {min(len(our_events), 3)}+, close: {any(e[0] == 'close' for e in our_events)}"
        )
    # Our result does not depend on the chunking.
    assert run_ours([stream], client_side=client_side) == ours


# -------------------------------------------------------------- strategies

CLOSE_CODES = [
    *range(995, 1020),
    1100,
    2000,
    2999,
    3000,
    3999,
    4000,
    4999,
    5000,
    65535,
    0,
]


def encode(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    key: bytes | None = None,
    length_form: int = 0,
) -> bytes:
    """Any frame, also invalid ones: ``length_form`` 0 minimal, 16 or 64 forced widths."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if key is not None else 0
    if length_form == 64 or n > 0xFFFF:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    elif length_form == 16 or n > 125:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | n])
    if key is None:
        return head + payload
    return head + key + unmask(payload, key)


utf8_text = st.text(max_size=40).map(str.encode)
bad_utf8 = st.sampled_from(
    [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xce", b"\xe2\x82", b"\x80"]
)
text_payload = st.one_of(
    utf8_text,
    st.tuples(utf8_text, bad_utf8, utf8_text).map(lambda t: b"".join(t)),
)
close_body = st.one_of(
    st.just(b""),
    st.binary(min_size=1, max_size=1),
    st.tuples(st.sampled_from(CLOSE_CODES), st.one_of(utf8_text, text_payload)).map(
        lambda t: (struct.pack("!H", t[0]) + t[1])[:125]
    ),
)


FAULTS = ("rsv", "opcode", "mask", "length16", "length64", "control_long", "control_fin", "fin")


@st.composite
def frame_bytes(draw: st.DrawFn, *, masked: bool) -> bytes:
    """One frame: usually well-formed, one time in five with exactly one fault."""
    opcode = draw(st.sampled_from([OP_TEXT, OP_BINARY, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE]))
    if opcode == OP_CLOSE:
        payload = draw(close_body)
    elif opcode == OP_TEXT:
        payload = draw(text_payload)
    elif opcode >= 8:
        payload = draw(st.binary(max_size=125))
    else:
        payload = draw(
            st.one_of(st.binary(max_size=300), st.integers(126, 70000).map(b"x".__mul__))
        )
    fin, rsv, length_form = True, 0, 0
    key = draw(st.binary(min_size=4, max_size=4)) if masked else None
    fault = draw(st.sampled_from(FAULTS)) if draw(st.integers(0, 4)) == 0 else None
    if fault == "rsv":
        rsv = draw(st.integers(1, 7))
    elif fault == "opcode":
        opcode = draw(st.sampled_from([0, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15]))
    elif fault == "mask":
        key = None if masked else draw(st.binary(min_size=4, max_size=4))
    elif fault == "length16":
        length_form = 16
    elif fault == "length64":
        length_form = 64
    elif fault == "control_long":
        opcode = draw(st.sampled_from([OP_PING, OP_PONG, OP_CLOSE]))
        payload = draw(st.binary(min_size=126, max_size=300))
    elif fault == "control_fin":
        opcode = draw(st.sampled_from([OP_PING, OP_PONG, OP_CLOSE]))
        fin = False
    elif fault == "fin":
        fin = False  # a data frame that starts a message nothing finishes
    return encode(opcode, payload, fin=fin, rsv=rsv, key=key, length_form=length_form)


@st.composite
def fragmented_message(draw: st.DrawFn, *, masked: bool) -> bytes:
    """A text or binary message in fragments, with control frames in between."""
    opcode = draw(st.sampled_from([OP_TEXT, OP_BINARY]))
    data = draw(text_payload if opcode == OP_TEXT else st.binary(max_size=200))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=False)]
    out = []
    for i, piece in enumerate(pieces):
        key = draw(st.binary(min_size=4, max_size=4)) if masked else None
        last = i == len(pieces) - 1
        out.append(encode(opcode if i == 0 else 0, piece, fin=last, key=key))
        if not last and draw(st.booleans()):
            ctl = draw(st.sampled_from([OP_PING, OP_PONG, OP_CLOSE]))
            body = draw(close_body) if ctl == OP_CLOSE else draw(st.binary(max_size=125))
            out.append(
                encode(ctl, body, key=draw(st.binary(min_size=4, max_size=4)) if masked else None)
            )
    return b"".join(out)


def streams(*, masked: bool) -> st.SearchStrategy[bytes]:
    """Concatenations of frames, fragmented messages and the odd garbage."""
    item = st.one_of(frame_bytes(masked=masked), fragmented_message(masked=masked))
    garbage = st.one_of(st.just(b""), st.just(b""), st.just(b""), st.binary(min_size=1, max_size=8))
    stream = st.tuples(st.lists(item, max_size=8), garbage).map(lambda t: b"".join(t[0]) + t[1])
    # Half the time the stream ends anywhere, e.g. inside a frame's payload.
    return st.tuples(stream, st.one_of(st.none(), st.integers(0, 1 << 20))).map(
        lambda t: t[0] if t[1] is None else t[0][: t[1] % (len(t[0]) + 1)]
    )


cut_points = st.lists(st.integers(0, 1 << 20), max_size=6)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------- tests


@SETTINGS
@given(stream=streams(masked=True), cuts=cut_points)
def test_server_side_structured_streams(stream: bytes, cuts: list[int]) -> None:
    compare(stream, cuts, client_side=False)


@SETTINGS
@given(stream=streams(masked=False), cuts=cut_points)
def test_client_side_structured_streams(stream: bytes, cuts: list[int]) -> None:
    compare(stream, cuts, client_side=True)


@SETTINGS
@given(stream=st.binary(max_size=200), cuts=cut_points, client_side=st.booleans())
def test_random_bytes(stream: bytes, cuts: list[int], client_side: bool) -> None:
    compare(stream, cuts, client_side=client_side)


@SETTINGS
@given(
    header=st.binary(min_size=1, max_size=1),
    tail=st.binary(max_size=200),
    cuts=cut_points,
    client_side=st.booleans(),
)
def test_random_bytes_with_a_plausible_second_byte(
    header: bytes, tail: bytes, cuts: list[int], client_side: bool
) -> None:
    """Random frames whose mask bit matches the direction get past the first check."""
    assume(tail)
    second = (tail[0] & 0x7F) | (0 if client_side else 0x80)
    compare(header + bytes([second]) + tail[1:], cuts, client_side=client_side)


@settings(max_examples=200, deadline=None)
@given(
    opcode=st.sampled_from([OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG]),
    data=st.binary(max_size=70000),
    text=st.text(max_size=200),
    code=st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1011, 1012, 1013, 3000, 4999]),
    mask=st.booleans(),
)
def test_build_frame_parses_identically(
    opcode: int, data: bytes, text: str, code: int, mask: bool
) -> None:
    if opcode == OP_TEXT:
        payload = text.encode()
    elif opcode == OP_CLOSE:
        payload = close_payload(code, text[:20])
    elif opcode in (OP_PING, OP_PONG):
        payload = data[:125]
    else:
        payload = data
    frame = build_frame(opcode, payload, mask=mask)
    theirs, failure, unfinished = run_wsproto([frame], client_side=not mask)
    assert failure is None and not unfinished
    ours = run_ours([frame], client_side=not mask)
    assert ours == (theirs, None)
    assert len(ours[0]) == 1


@settings(max_examples=100, deadline=None)
@given(
    messages=st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=100)), max_size=5),
    fragment=st.booleans(),
    client=st.booleans(),
)
def test_wsproto_frames_parse_in_ours(
    messages: list[bytes | str], fragment: bool, client: bool
) -> None:
    """What wsproto writes (as a client: masked; as a server: not) parses in ours."""
    writer = FrameProtocol(client=client, extensions=[])
    wire = b""
    for msg in messages:
        if fragment and len(msg) > 1:
            half = len(msg) // 2
            wire += writer.send_data(msg[:half], fin=False)
            wire += writer.ping(b"mid")
            wire += writer.send_data(msg[half:], fin=True)
        else:
            wire += writer.send_data(msg)
    wire += writer.close(1000, "bye")
    events, failure = run_ours([wire], client_side=not client)
    assert failure is None
    got = [e for e in events if e[0] == "message"]
    assert got == [
        (
            "message",
            OP_TEXT if isinstance(m, str) else OP_BINARY,
            m.encode() if isinstance(m, str) else m,
        )
        for m in messages
    ]
    assert events[-1] == ("close", 1000, "bye")


def test_every_close_code() -> None:
    """Every code up to 5100 (and a few above), with and without a reason, both directions."""
    for client_side in (False, True):
        key = None if client_side else b"\x01\x02\x03\x04"
        for code in [*range(5100), 10000, 32768, 65535]:
            for reason in (b"", b"ok", b"\xff"):
                frame = encode(OP_CLOSE, struct.pack("!H", code) + reason, key=key)
                compare(frame, [], client_side=client_side)


# 16-bit and 64-bit lengths without drawing 64 KiB byte by byte (slow): a short pattern, repeated
big_payloads = st.tuples(st.integers(65530, 66000), st.binary(min_size=1, max_size=16)).map(
    lambda t: (t[1] * (t[0] // len(t[1]) + 1))[: t[0]]
)


@settings(max_examples=200, deadline=None)
@given(
    data=st.one_of(st.binary(max_size=300), big_payloads),
    key=st.binary(min_size=4, max_size=4),
)
def test_masked_binary_equals_build_frame_and_parses_in_wsproto(data: bytes, key: bytes) -> None:
    """The client's fast masked frame is build_frame's, byte for byte, and wsproto reads it."""
    frame = masked_binary(data, key)
    assert frame == build_frame(OP_BINARY, data, mask=True, mask_key=key)
    theirs, failure, unfinished = run_wsproto([frame], client_side=False)
    assert failure is None and not unfinished
    assert run_ours([frame], client_side=False) == (theirs, None)


def test_mask_keys_come_from_urandom_in_fresh_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []

    def fake_urandom(n: int) -> bytes:
        reads.append(n)
        return bytes((len(reads) + i) % 256 for i in range(n))

    monkeypatch.setattr(frames_module.os, "urandom", fake_urandom)
    keys = MaskKeys()
    drawn = [keys.next() for _ in range(300)]
    assert all(len(k) == 4 for k in drawn)
    assert reads == [1024, 1024]  # 256 keys per read, then a fresh read
    assert b"".join(drawn[:256]) == fake_urandom_bytes(1, 1024)
    assert drawn[256] == fake_urandom_bytes(2, 1024)[:4]


def fake_urandom_bytes(call: int, n: int) -> bytes:
    return bytes((call + i) % 256 for i in range(n))


def test_mask_keys_drawn_before_a_fork_are_not_reused_in_the_child() -> None:
    keys = MaskKeys()
    keys.next()  # the parent's pool of 256 keys is drawn
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next key and leave at once
        try:
            os.write(w, keys.next())
        finally:
            os._exit(0)
    os.close(w)
    try:
        child_key = os.read(r, 4)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    assert len(child_key) == 4
    assert child_key != keys.next()  # without the fork hook both would take key 2


@settings(max_examples=150, deadline=None)
@given(
    payload=st.one_of(st.binary(max_size=300), big_payloads),
    masked=st.booleans(),
    client_side=st.booleans(),
    limit=st.sampled_from([1 << 20, 100, 0]),
)
def test_a_whole_frame_in_one_read_parses_as_in_pieces(
    payload: bytes, masked: bool, client_side: bool, limit: int
) -> None:
    """The one-frame-per-read shortcut in ``feed`` gives what the general parser gives.

    Fed whole (the shortcut) and in pieces (the general path): the
    same messages, or the same close code, whatever the masking or the limit.
    """
    frame = build_frame(OP_BINARY, payload, mask=masked, mask_key=b"\x01\x02\x03\x04")

    def outcome(chunks: list[bytes]) -> tuple[list[tuple[int, bytes]], int | None]:
        reader = FrameReader(expect_masked=not client_side, max_message_size=limit)
        out: list[tuple[int, bytes]] = []
        try:
            for chunk in chunks:
                reader.feed(chunk, out)
        except FrameError as exc:
            return out, exc.code
        return out, None

    whole = outcome([frame])
    step = 1 if len(frame) < 400 else 4099  # the big ones: header cut, then large pieces
    pieces = [frame[:1], frame[1:3]] + [frame[i : i + step] for i in range(3, len(frame), step)]
    assert whole == outcome(pieces)
    if masked == (not client_side) and len(payload) <= limit:
        assert whole == ([(OP_BINARY, payload)], None)


def test_a_whole_frame_with_a_non_minimal_length_fails_in_one_read() -> None:
    """A 16-bit length under 126 is a protocol error (1002) on the shortcut too."""
    frame = b"\x82\xfe\x00\x05" + b"\x00\x00\x00\x00" + b"hello"
    reader = FrameReader(expect_masked=True)
    with pytest.raises(FrameError) as info:
        reader.feed(frame, [])
    assert info.value.code == 1002
