"""Groups 2-3: the envelope and echo, and faults the connection survives."""

from __future__ import annotations

import time
import uuid as _uuid
from typing import Any

from goomerang_proto import codec
from goomerang_proto import frames as fr
from goomerang_proto.message import Message
from goomerang_proto.pb import goomerang_frame_pb2 as pb
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

from .peer import PeerClosed, PeerTimeout, RawPeer
from .suite import Context, Outcome, case, echo_works, failed, info, msg, ok

KIND = "goomerang.example.MessageV1"
UNICODE_HEADERS = {"uni": "héllo wörld ✓ 日本語 🚀", "empty": "", "ключ": "значение", "k": "v"}


def text_of(env: pb.Frame) -> str:
    text: str = MessageV1.FromString(env.payload).message
    return text


def _echo(peer: RawPeer, message: Message[Any], uuid: str = "") -> tuple[Any, pb.Frame]:
    peer.send_message(message, uuid=uuid)
    try:
        return peer.next_envelope()
    except PeerTimeout as exc:
        raise failed("no echo arrived", expected=f"{KIND} echo within 3 s") from exc
    except PeerClosed as exc:
        raise failed(f"connection ended instead of an echo: {exc}") from exc


def _fields(data: bytes) -> list[int]:
    """Top-level protobuf field numbers of ``data``, in wire order."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        out.append(number)
        if wire_type == 0:
            _, pos = _varint(data, pos)
        elif wire_type == 2:
            size, pos = _varint(data, pos)
            pos += size
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire_type}")
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _stays_up(peer: RawPeer, what: str) -> Outcome:
    if not echo_works(peer, "after-" + what):
        raise failed(f"after {what}, the connection no longer echoes")
    return ok(f"after {what}, the connection stays up and echoes")


# ------------------------------------------------------------- group 2
@case(
    "2.1",
    "An async echo comes back as one unfragmented, unmasked binary frame",
    rule="PROTOCOL.md (one binary message, 0x82); RFC 6455 5.1 (server frames unmasked)",
)
def echo_frame(ctx: Context) -> Outcome:
    frame, _ = _echo(ctx.peer(), msg("frame-shape"))
    if frame.masked:
        raise failed("the server masked its frame", expected="82", got=frame.raw[:2].hex())
    if frame.opcode != fr.OP_BINARY or frame.rsv:
        raise failed("not a plain binary frame", expected="82", got=frame.raw[:1].hex())
    if not frame.fin:
        raise info("the echo was fragmented (allowed by RFC 6455, not what Go sends)")
    return ok("first byte 0x82, no mask")


@case(
    "2.2",
    "The echo's envelope: kind, payload, payloadSize, headers, no uuid, not sync",
    rule="PROTOCOL.md The envelope",
)
def echo_envelope(ctx: Context) -> Outcome:
    sent = msg("envelope", {"k": "v"})
    _, env = _echo(ctx.peer(), sent)
    want = (KIND, sent.payload.SerializeToString(), {"k": "v"}, "", False)
    got = (env.kind, env.payload, dict(env.headers), env.uuid, env.is_sync)
    if got != want:
        raise failed("envelope fields differ", expected=repr(want), got=repr(got))
    if env.payloadSize != len(env.payload):
        raise failed(
            "payloadSize is not len(payload)",
            expected=str(len(env.payload)),
            got=str(env.payloadSize),
        )
    return ok("kind, payload, payloadSize, headers as sent; uuid empty; is_sync false")


@case(
    "2.3",
    "The echo carries a creation timestamp near the current time",
    rule="PROTOCOL.md The envelope (creation: when the sender packed the frame)",
)
def creation(ctx: Context) -> Outcome:
    _, env = _echo(ctx.peer(), msg("creation"))
    if not env.HasField("creation"):
        raise failed("no creation field", expected="field 5 (Timestamp)")
    ts = env.creation
    if not 0 <= ts.nanos < 1_000_000_000:
        raise failed("creation.nanos out of range", got=str(ts.nanos))
    skew = ts.seconds + ts.nanos / 1e9 - time.time()
    if abs(skew) > 60:
        raise info(f"creation is {skew:+.1f} s from this machine's clock")
    return ok(f"creation set, {skew * 1000:+.1f} ms from this machine's clock")


@case(
    "2.4",
    "The envelope is written in field order with proto3 defaults omitted",
    rule="PROTOCOL.md What the Go implementation puts on the wire (observed, not required)",
)
def canonical(ctx: Context) -> Outcome:
    frame, _ = _echo(ctx.peer(), msg("canonical", {"a": "1"}))
    numbers = _fields(frame.payload)
    if numbers != sorted(numbers) or 1 in numbers or 4 in numbers:
        raise info(
            "the envelope is valid protobuf but not in Go's canonical form",
            expected="fields 2,3,5,6,7 in order",
            got=",".join(map(str, numbers)),
        )
    return ok("fields " + ",".join(map(str, numbers)))


@case(
    "2.5",
    "A sync request gets one reply with its uuid, is_sync, the payload and echo: 1",
    rule="PROTOCOL.md Synchronous send; the conformance server profile",
)
def sync_echo(ctx: Context) -> Outcome:
    uid = str(_uuid.uuid4())
    sent = msg("sync", {"k": "v"})
    _, env = _echo(ctx.peer(), sent, uid)
    want = (uid, True, sent.payload.SerializeToString(), {"k": "v", "echo": "1"})
    got = (env.uuid, env.is_sync, env.payload, dict(env.headers))
    if got != want:
        raise failed("sync reply differs", expected=repr(want), got=repr(got))
    return ok("same uuid, is_sync, payload; headers plus echo: 1")


@case(
    "2.6",
    "Twenty pipelined sync requests each get exactly one reply with their own uuid",
    rule="PROTOCOL.md Synchronous send (correlation by uuid; order not promised)",
)
def pipelined_sync(ctx: Context) -> Outcome:
    peer = ctx.peer()
    asked = {str(_uuid.uuid4()): f"p{i}" for i in range(20)}
    for uid, text in asked.items():
        peer.send_message(msg(text), uuid=uid)
    got: dict[str, int] = {}
    order = []
    while sum(got.values()) < len(asked):
        try:
            _, env = peer.next_envelope()
        except (PeerTimeout, PeerClosed) as exc:
            raise failed(f"{len(got)} of 20 replies arrived ({exc})") from exc
        if asked.get(env.uuid) != text_of(env) or not env.is_sync:
            raise failed("a reply does not match its request", got=f"{env.uuid} {text_of(env)!r}")
        got[env.uuid] = got.get(env.uuid, 0) + 1
        order.append(env.uuid)
    if any(n > 1 for n in got.values()):
        raise failed("a request got two replies")
    in_order = order == list(asked)
    return ok(f"20 replies, each once, {'in' if in_order else 'out of'} request order")


@case(
    "2.7",
    "Unicode keys and values, empty values and no headers at all are echoed exactly",
    rule="PROTOCOL.md The envelope (headers: map<string,string>)",
)
def unicode_headers(ctx: Context) -> Outcome:
    peer = ctx.peer()
    for headers in (UNICODE_HEADERS, {}):
        _, env = _echo(peer, msg("headers", dict(headers)))
        if dict(env.headers) != headers:
            raise failed("headers differ", expected=repr(headers), got=repr(dict(env.headers)))
    uid = str(_uuid.uuid4())
    _, env = _echo(peer, msg("headers", dict(UNICODE_HEADERS)), uid)
    want = {**UNICODE_HEADERS, "echo": "1"}
    if dict(env.headers) != want:
        raise failed("sync headers differ", expected=repr(want), got=repr(dict(env.headers)))
    return ok("async and sync headers byte-identical")


@case("2.8", "An empty payload is echoed with payloadSize 0", rule="PROTOCOL.md The envelope")
def empty_payload(ctx: Context) -> Outcome:
    _, env = _echo(ctx.peer(), msg(""))
    if env.kind != KIND or env.payload != b"" or env.payloadSize != 0:
        raise failed(
            "empty message not echoed as such",
            got=f"{env.kind} {env.payload.hex()} {env.payloadSize}",
        )
    return ok("kind MessageV1, empty payload, payloadSize 0")


# ------------------------------------------------------------- group 3
@case(
    "3.1",
    "An async message of an unknown kind leaves the connection up",
    rule="PROTOCOL.md The envelope (unknown kind: error hook, connection stays)",
)
def unknown_async(ctx: Context) -> Outcome:
    peer = ctx.peer()
    peer.send_envelope(codec.pack_envelope("goomerang.example.Nope", b"\x0a\x01x", creation_ns=1))
    return _stays_up(peer, "an unknown kind")


@case(
    "3.2",
    "A sync request of an unknown kind leaves the connection up",
    rule="PROTOCOL.md The envelope (the protocol has no error reply: the caller times out)",
)
def unknown_sync(ctx: Context) -> Outcome:
    peer = ctx.peer()
    uid = str(_uuid.uuid4())
    peer.send_envelope(
        codec.pack_envelope("goomerang.example.Nope", b"", uuid=uid, is_sync=True, creation_ns=1)
    )
    before = barrier(peer, "after-unknown-sync")
    answered = [e for e in before if e.uuid == uid]
    detail = "answered" if answered else "not answered (no error reply exists on the wire)"
    return ok(f"the connection stays up; the request was {detail}")


@case("3.3", "A binary message that is not a Frame leaves the connection up", rule="PROTOCOL.md")
def garbage_envelope(ctx: Context) -> Outcome:
    peer = ctx.peer()
    peer.send_frame(fr.OP_BINARY, b"\xff\xff\xff\xff not protobuf")
    return _stays_up(peer, "a malformed envelope")


@case(
    "3.4",
    "A text message leaves the connection up",
    rule="PROTOCOL.md Transport (text: error hook, connection stays)",
)
def text_message(ctx: Context) -> Outcome:
    peer = ctx.peer()
    peer.send_frame(fr.OP_TEXT, b"hello")
    return _stays_up(peer, "a text message")


@case(
    "3.5",
    "A MessageV1 whose payload does not decode leaves the connection up",
    rule="PROTOCOL.md The envelope",
)
def bad_payload(ctx: Context) -> Outcome:
    peer = ctx.peer()
    peer.send_envelope(codec.pack_envelope(KIND, b"\x0a\xff\x01", creation_ns=1))
    return _stays_up(peer, "an undecodable payload")


def collect(peer: RawPeer, until: str, timeout: float = 3.0) -> list[pb.Frame]:
    """Envelopes arriving on ``peer`` up to and including the MessageV1 whose text is ``until``."""
    seen: list[pb.Frame] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, env = peer.next_envelope(max(0.001, deadline - time.monotonic()))
        except (PeerTimeout, PeerClosed) as exc:
            raise failed(
                f"{until!r} never arrived ({exc})", got=repr([text_of(e) for e in seen])
            ) from exc
        seen.append(env)
        if env.kind == KIND and text_of(env) == until:
            return seen


def barrier(peer: RawPeer, tag: str) -> list[pb.Frame]:
    """A sync echo round trip; returns what arrived before its reply."""
    uid = str(_uuid.uuid4())
    peer.send_message(msg(tag), uuid=uid)
    seen = collect(peer, tag)
    return seen[:-1]
