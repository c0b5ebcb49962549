"""Groups 5-8: control frames, fragmentation, message size, hostile input."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from goomerang_proto import codec
from goomerang_proto import frames as fr
from goomerang_proto.pb.goomerang_frame_pb2 import Frame
from goomerang_proto.testing.wire import RawFrame

from .peer import PeerClosed, PeerTimeout, RawPeer
from .suite import Context, Outcome, case, echo_works, failed, info, msg, ok

KIND = "goomerang.example.MessageV1"


def close_code(payload: bytes) -> int | None:
    """The status code of a Close payload (None when it has none)."""
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None


def _next_control(peer: RawPeer, opcode: int, timeout: float = 3.0) -> RawFrame:
    deadline = time.monotonic() + timeout
    while True:
        try:
            frame = peer.read_frame(max(0.001, deadline - time.monotonic()))
        except PeerTimeout as exc:
            raise failed(f"no opcode {opcode} frame within {timeout} s") from exc
        except PeerClosed as exc:
            raise failed(f"the connection ended first ({exc})") from exc
        if frame.opcode == opcode:
            return frame


def _pong(ctx: Context, payload: bytes) -> Outcome:
    peer = ctx.peer()
    peer.send_frame(fr.OP_PING, payload)
    pong = _next_control(peer, fr.OP_PONG)
    if pong.payload != payload:
        raise failed("Pong payload differs", expected=payload.hex(), got=pong.payload.hex())
    if pong.masked:
        raise failed("the server masked its Pong", got=pong.raw.hex())
    return ok(f"Pong with the {len(payload)}-byte payload")


def _close_exchange(ctx: Context, payload: bytes, accept: tuple[bytes, ...]) -> Outcome:
    peer = ctx.peer()
    peer.send_frame(fr.OP_CLOSE, payload)
    answer = _next_control(peer, fr.OP_CLOSE)
    closed = peer.read_until_eof(3.0)
    if answer.payload not in accept:
        code = close_code(answer.payload)
        diff = {
            "expected": " or ".join(a.hex() or "(empty)" for a in accept),
            "got": answer.payload.hex() or "(empty)",
        }
        if code is None or fr.valid_close_code(code):
            raise info(f"answered with another valid close (code {code})", None, **diff)
        raise failed(f"answered with an invalid close code {code}", None, **diff)
    if not closed:
        raise info("answered the Close but did not close TCP within 3 s (RFC 6455 7.1.1: SHOULD)")
    return ok(f"answered Close {answer.payload.hex() or '(empty)'} and closed TCP")


# ------------------------------------------------------------- group 5
@case("5.1", "A Ping is answered by a Pong with its payload", rule="RFC 6455 5.5.2, 5.5.3")
def ping(ctx: Context) -> Outcome:
    return _pong(ctx, b"hello")


@case("5.2", "An empty Ping is answered by an empty Pong", rule="RFC 6455 5.5.2, 5.5.3")
def ping_empty(ctx: Context) -> Outcome:
    return _pong(ctx, b"")


@case("5.3", "A 125-byte Ping is answered with all 125 bytes", rule="RFC 6455 5.5 (max 125)")
def ping_max(ctx: Context) -> Outcome:
    return _pong(ctx, bytes(range(125)))


@case("5.4", "An unsolicited Pong is ignored", rule="RFC 6455 5.5.3")
def unsolicited_pong(ctx: Context) -> Outcome:
    peer = ctx.peer()
    peer.send_frame(fr.OP_PONG, b"unasked")
    if not echo_works(peer):
        raise failed("the connection stopped echoing after an unsolicited Pong")
    return ok("ignored; the connection echoes")


@case(
    "5.5",
    "Close 1000 is answered with Close 1000, then the server closes TCP",
    rule="RFC 6455 5.5.1, 7.1.1; PROTOCOL.md Close handshake (88 02 03 e8)",
)
def close_normal(ctx: Context) -> Outcome:
    return _close_exchange(ctx, fr.close_payload(1000), (fr.close_payload(1000),))


@case("5.6", "Close 1000 with a reason is answered with Close 1000", rule="RFC 6455 5.5.1")
def close_reason(ctx: Context) -> Outcome:
    answers = (fr.close_payload(1000), fr.close_payload(1000, "bye"))
    return _close_exchange(ctx, fr.close_payload(1000, "bye"), answers)


@case("5.7", "An empty Close is answered with a Close", rule="RFC 6455 5.5.1 (1005: no status)")
def close_empty(ctx: Context) -> Outcome:
    return _close_exchange(ctx, b"", (b"", fr.close_payload(1000)))


@case(
    "5.8",
    "Close 3000 and 4999 (registered and private codes) are answered",
    rule="RFC 6455 7.4.2",
)
def close_private(ctx: Context) -> Outcome:
    outcomes = [
        _close_exchange(ctx, fr.close_payload(code), (fr.close_payload(code),))
        for code in (3000, 4999)
    ]
    return ok("; ".join(o.summary for o in outcomes))


# ------------------------------------------------------------- group 6
def _fragmented(ctx: Context, text: str, pieces: int, ping_between: bool) -> Outcome:
    peer = ctx.peer()
    body = codec.pack(msg(text), creation_ns=time.time_ns())
    step = max(1, -(-len(body) // pieces))
    chunks = [body[i : i + step] for i in range(0, len(body), step)]
    for i, chunk in enumerate(chunks):
        opcode = fr.OP_BINARY if i == 0 else fr.OP_CONTINUATION
        peer.send_frame(opcode, chunk, fin=i == len(chunks) - 1)
        if ping_between and i == 0:
            peer.send_frame(fr.OP_PING, b"between")
    try:
        frame, controls = peer.next_data()
    except (PeerTimeout, PeerClosed) as exc:
        raise failed(f"no echo of the fragmented message ({exc})") from exc
    env = Frame.FromString(frame.payload)
    if env.kind != KIND or env.payload != msg(text).payload.SerializeToString():
        raise failed("echo differs", got=frame.payload[:80].hex())
    if ping_between and not any(c.opcode == fr.OP_PONG for c in controls):
        pong = _next_control(peer, fr.OP_PONG, 1.0)
        if pong.payload != b"between":
            raise failed("Pong payload differs", expected=b"between".hex(), got=pong.payload.hex())
    return ok(f"{len(chunks)} fragments reassembled and echoed")


@case("6.1", "A message in 3 fragments is echoed whole", rule="RFC 6455 5.4")
def fragments(ctx: Context) -> Outcome:
    return _fragmented(ctx, "three fragments", 3, False)


@case("6.2", "A message in 1-byte fragments is echoed whole", rule="RFC 6455 5.4")
def tiny_fragments(ctx: Context) -> Outcome:
    return _fragmented(ctx, "one byte at a time", 1000, False)


@case(
    "6.3",
    "A Ping between fragments is answered and the message echoed",
    rule="RFC 6455 5.4 (control frames in the middle of a fragmented message)",
)
def ping_in_fragments(ctx: Context) -> Outcome:
    return _fragmented(ctx, "ping inside", 2, True)


# ------------------------------------------------------------- group 7
def _big_echo(ctx: Context, size: int) -> Outcome:
    peer = ctx.peer()
    text = "x" * size
    peer.send_message(msg(text))
    try:
        frame, _ = peer.next_data(10.0)
    except (PeerTimeout, PeerClosed) as exc:
        raise failed(f"no echo of {size} bytes ({exc})") from exc
    if msg(text).payload.SerializeToString() not in frame.payload:
        raise failed("echo differs", got=f"{len(frame.payload)} bytes")
    return ok(f"{size}-byte message echoed")


@case("7.1", "A 64 KiB message is echoed (64-bit length field)", rule="RFC 6455 5.2")
def size_64k(ctx: Context) -> Outcome:
    return _big_echo(ctx, 65536)


@case("7.2", "A 512 KiB message is echoed", rule="PROTOCOL.md (large messages both ways)")
def size_512k(ctx: Context) -> Outcome:
    return _big_echo(ctx, 512 * 1024)


@case(
    "7.3",
    "An 8 MiB message is refused with 1009 or echoed",
    rule="RFC 6455 7.4.1 (1009 message too big); a limit is not required",
)
def size_8m(ctx: Context) -> Outcome:
    peer = ctx.peer()
    text = "y" * (8 << 20)
    try:
        peer.send_message(msg(text))
    except PeerClosed:
        pass  # the server may close while we still write
    try:
        frame, _ = peer.next_data(15.0)
    except PeerClosed as exc:
        code = close_code(_close_payload(exc))
        if code == 1009:
            return ok("refused with Close 1009 (the server has a size limit)")
        raise failed(
            f"the connection ended with close code {code}", expected="1009 or an echo"
        ) from exc
    except PeerTimeout as exc:
        raise failed("neither an echo nor a Close within 15 s") from exc
    if len(frame.payload) < 8 << 20:
        raise failed("echo shorter than the message", got=f"{len(frame.payload)} bytes")
    raise info("echoed 8 MiB: the server has no message size limit at 8 MiB")


def _close_payload(exc: PeerClosed) -> bytes:
    text = str(exc)
    prefix = "server sent Close "
    return bytes.fromhex(text[len(prefix) :]) if text.startswith(prefix) else b""


# ------------------------------------------------------------- group 8
HOSTILE_RULE = "RFC 6455 7.1.7 (fail the connection); the issue's hostile-input survival"


SPIN_WINDOW = 0.2
"""Seconds over which the server's CPU use is measured after a hostile case."""


def _hostile(ctx: Context, data: bytes, want: int, what: str, *, limit_optional: bool) -> Outcome:
    bystander = ctx.peer()
    victim = ctx.peer()
    victim.send(data)
    answer = victim.wait_close(2.0)
    tcp_closed = victim.read_until_eof(1.0)
    if not echo_works(bystander, "bystander"):
        raise failed(f"after {what}, another connection stopped working")
    notes = ["another connection kept working"]
    cpu_before = ctx.target.cpu_seconds()
    threading.Event().wait(SPIN_WINDOW)  # a measurement window, not a synchronisation
    cpu_after = ctx.target.cpu_seconds()
    spinning = False
    if cpu_before is not None and cpu_after is not None:
        share = (cpu_after - cpu_before) / SPIN_WINDOW
        notes.append(f"server CPU afterwards: {share:.0%} of a core")
        spinning = share > 0.5
    if answer is None:
        if tcp_closed:
            raise info(f"after {what}: TCP closed without a Close frame", notes)
        if limit_optional:
            raise info(f"after {what}: no Close; the server waits for the rest (no limit)", notes)
        raise failed(f"after {what}: no Close and the connection stays open", notes)
    code = close_code(answer.payload) or 1005
    if code != want:
        raise info(
            f"after {what}: Close {code} (the RFC names {want})", notes, got=answer.raw.hex()
        )
    if not tcp_closed:
        raise info(f"Close {code}, but TCP stayed open for 1 s", notes)
    if spinning:
        raise info(f"Close {code}, TCP closed, but the server process keeps a core busy", notes)
    return ok(f"Close {code}, TCP closed", notes)


def _hostile_case(
    id: str,
    title: str,
    data_fn: Callable[[], bytes],
    want: int,
    what: str,
    *,
    limit_optional: bool = False,
) -> None:
    def run(ctx: Context) -> Outcome:
        return _hostile(ctx, data_fn(), want, what, limit_optional=limit_optional)

    case(id, title, rule=HOSTILE_RULE, needs="managed")(run)


def _frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    return fr.build_frame(opcode, payload, mask=masked, mask_key=b"\x01\x02\x03\x04", fin=fin)


_hostile_case(
    "8.1",
    "An unmasked client frame fails the connection with 1002",
    lambda: _frame(fr.OP_BINARY, codec.pack(msg("unmasked")), masked=False),
    1002,
    "an unmasked frame (RFC 6455 5.1)",
)
_hostile_case(
    "8.2",
    "RSV1 without a negotiated extension fails the connection with 1002",
    lambda: _frame(fr.OP_BINARY | 0x40, b"x"),
    1002,
    "RSV1 set (RFC 6455 5.2)",
)
_hostile_case(
    "8.3",
    "A reserved opcode fails the connection with 1002",
    lambda: _frame(0x3, b""),
    1002,
    "opcode 3 (RFC 6455 5.2)",
)
_hostile_case(
    "8.4",
    "A fragmented Ping fails the connection with 1002",
    lambda: _frame(fr.OP_PING, b"x", fin=False),
    1002,
    "a fragmented control frame (RFC 6455 5.5)",
)
_hostile_case(
    "8.5",
    "A 126-byte Ping fails the connection with 1002",
    lambda: fr.frame_header(fr.OP_PING, 126, masked=True) + b"\0\0\0\0" + b"p" * 126,
    1002,
    "a control frame over 125 bytes (RFC 6455 5.5)",
)
_hostile_case(
    "8.6",
    "A continuation frame with nothing to continue fails the connection with 1002",
    lambda: _frame(fr.OP_CONTINUATION, b"x"),
    1002,
    "a stray continuation (RFC 6455 5.4)",
)
_hostile_case(
    "8.7",
    "A text message with invalid UTF-8 fails the connection with 1007",
    lambda: _frame(fr.OP_TEXT, b"\xff\xfe\xfd"),
    1007,
    "invalid UTF-8 (RFC 6455 8.1)",
)
_hostile_case(
    "8.8",
    "A Close with code 1005 (never sent on the wire) fails the connection with 1002",
    lambda: _frame(fr.OP_CLOSE, b"\x03\xed"),
    1002,
    "close code 1005 (RFC 6455 7.4.1)",
)
_hostile_case(
    "8.9",
    "A Close reason with invalid UTF-8 fails the connection with 1007",
    lambda: _frame(fr.OP_CLOSE, b"\x03\xe8\xff\xfe"),
    1007,
    "an invalid close reason (RFC 6455 5.5.1)",
)
_hostile_case(
    "8.10",
    "Garbage bytes after the upgrade fail the connection with 1002",
    lambda: b"\xff" * 64,
    1002,
    "garbage",
)
_hostile_case(
    "8.11",
    "A frame header claiming 2^40 bytes fails the connection with 1009",
    lambda: fr.frame_header(fr.OP_BINARY, 1 << 40, masked=True) + b"\0\0\0\0",
    1009,
    "a 1 TiB length (RFC 6455 7.4.1)",
    limit_optional=True,
)
