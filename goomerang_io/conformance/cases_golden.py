"""Group 2, continued: a real Go client session replayed against the server.

The session is the one PROTOCOL.md's observations come from (Go goomerang v0.3.0
client and server, captured on the wire: ../shared/golden): each client frame is
sent as captured (masked afresh), and the server must answer what the Go server
answered, field by field, apart from the creation time it stamps (and the
request's headers, which the profile's sync reply carries besides ``echo: 1``).
"""

from __future__ import annotations

import time

from goomerang_proto import codec
from goomerang_proto import frames as fr
from goomerang_proto.pb import goomerang_frame_pb2 as pb
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1
from goomerang_proto.testing.wire import RawFrame

from .peer import PeerClosed, PeerTimeout, RawPeer
from .suite import Context, Outcome, case, failed, msg, ok

KIND = "goomerang.example.MessageV1"

# (opcode, payload hex) the Go client sent -> [(opcode, payload hex)] the Go server answered
GO_SESSION: list[tuple[int, str, list[tuple[int, str]]]] = [
    (
        2,
        (
            "121b676f6f6d6572616e672e6578616d706c652e4d657373616765563118072a0c08df9a"
            "a7d80610f6e7f5920232060a016b1201763a070a0568656c6c6f"
        ),
        [
            (
                2,
                (
                    "121b676f6f6d6572616e672e6578616d706c652e4d657373616765563118072a0c08"
                    "df9aa7d80610b4dea3930232060a016b1201763a070a0568656c6c6f"
                ),
            )
        ],
    ),
    (
        2,
        (
            "0a2430653033616536302d326565652d346237352d396335622d65653532623332313931"
            "3361121b676f6f6d6572616e672e6578616d706c652e4d6573736167655631180620012a"
            "0c08df9aa7d806108fc482f30232060a016b1201763a060a0473796e63"
        ),
        [
            (
                2,
                (
                    "0a2430653033616536302d326565652d346237352d396335622d6565353262333231"
                    "39313361121b676f6f6d6572616e672e6578616d706c652e4d657373616765563118"
                    "0620012a0c08df9aa7d806109ffa95f30232090a046563686f1201313a060a047379"
                    "6e63"
                ),
            )
        ],
    ),
    (
        2,
        (
            "121f676f6f6d6572616e672e70726f746f636f6c2e537562736372696265436d6418042a"
            "0c08df9aa7d8061081f283d3033a040a027431"
        ),
        [],
    ),
    (
        2,
        (
            "121d676f6f6d6572616e672e70726f746f636f6c2e5075626c697368436d6418282a0b08"
            "e09aa7d8061082f48956320e0a096d6573736167652d6b1201763a280a027431121b676f"
            "6f6d6572616e672e6578616d706c652e4d65737361676556311a050a03707562"
        ),
        [
            (
                2,
                (
                    "121b676f6f6d6572616e672e6578616d706c652e4d657373616765563118052a0b08"
                    "e09aa7d806109bd5a35632060a016b1201763a050a03707562"
                ),
            )
        ],
    ),
    (
        2,
        (
            "121f676f6f6d6572616e672e70726f746f636f6c2e42726f616463617374436d6418262a"
            "0c08e09aa7d80610a8df8bb601320e0a096d6573736167652d6b1201763a26121b676f6f"
            "6d6572616e672e6578616d706c652e4d65737361676556311a070a056263617374"
        ),
        [
            (
                2,
                (
                    "121b676f6f6d6572616e672e6578616d706c652e4d657373616765563118072a0c08"
                    "e09aa7d80610faeba9b60132060a016b1201763a070a056263617374"
                ),
            )
        ],
    ),
    (
        9,
        "70696e67",
        [(10, "70696e67")],
    ),
    (
        9,
        "70696e67",
        [(10, "70696e67")],
    ),
    (
        8,
        "03e8",
        [(8, "03e8")],
    ),
]


PROBE = "golden-probe"


def _is_probe(frame: RawFrame) -> bool:
    if frame.opcode != fr.OP_BINARY:
        return False
    env = pb.Frame.FromString(frame.payload)
    return env.kind == KIND and MessageV1.FromString(env.payload).message == PROBE


def _next_not_probe(peer: RawPeer) -> RawFrame:
    """The next frame that is not one of our probes."""
    while True:
        frame = peer.read_frame()
        if not _is_probe(frame):
            return frame


def _wait_subscribed(ctx: Context, peer: RawPeer, topic: str) -> None:
    """The capture paused 200 ms after subscribing (no ack exists on the wire): instead,
    publish probes from another connection until one arrives, so the replay cannot race."""
    other = ctx.peer()
    probe = codec.pack_publish_cmd(topic, msg(PROBE), creation_ns=time.time_ns())
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        other.send_envelope(probe)
        try:
            frame = peer.read_frame(0.05)
        except PeerTimeout:
            continue
        if _is_probe(frame):
            peer.send_frame(fr.OP_PING, b"golden-barrier")  # probes in flight end before the pong
            while True:
                frame = peer.read_frame()
                if frame.opcode == fr.OP_PONG and frame.payload == b"golden-barrier":
                    return
        else:
            raise failed(
                "an unexpected frame while waiting for the subscription", got=frame.raw.hex()
            )
    raise failed(f"the subscription to {topic!r} never took effect (3 s of probes)")


def _same(opcode: int, want: bytes, got: bytes) -> bool:
    if opcode != fr.OP_BINARY:
        return want == got
    a, b = pb.Frame.FromString(want), pb.Frame.FromString(got)
    # The recording's sync handler set only `echo: 1`; the profile's copies the request's
    # headers too: the recorded headers must be there, the profile may add the request's.
    if not dict(a.headers).items() <= dict(b.headers).items():
        return False
    for f in (a, b):
        f.ClearField("creation")
        f.ClearField("headers")
    return a == b and b.payloadSize == len(b.payload)


@case(
    "2.9",
    "A recorded Go client session gets the answers the Go server gave",
    rule="PROTOCOL.md What the Go implementation puts on the wire (golden session)",
)
def go_session(ctx: Context) -> Outcome:
    peer = ctx.peer()
    for n, (opcode, sent, answers) in enumerate(GO_SESSION, 1):
        data = bytes.fromhex(sent)
        peer.send_frame(opcode, data)
        if opcode == fr.OP_BINARY and pb.Frame.FromString(data).kind == codec.SUBSCRIBE_CMD:
            _wait_subscribed(
                ctx, peer, pb.SubscribeCmd.FromString(pb.Frame.FromString(data).payload).topic
            )
        for want_op, want in answers:
            try:
                frame = _next_not_probe(peer)
            except (PeerTimeout, PeerClosed) as exc:
                raise failed(
                    f"frame {n}: no answer ({exc})", expected=f"opcode {want_op} {want}"
                ) from exc
            if frame.opcode != want_op or not _same(want_op, bytes.fromhex(want), frame.payload):
                raise failed(
                    f"frame {n}: the answer differs (creation and profile headers aside)",
                    expected=f"opcode {want_op} {want}",
                    got=f"opcode {frame.opcode} {frame.payload.hex()}",
                )
    if not peer.read_until_eof(3.0):
        raise failed("the server did not close TCP after the close handshake")
    frames = sum(len(a) for _, _, a in GO_SESSION)
    return ok(f"{len(GO_SESSION)} client frames, {frames} answers as the Go server gave them")
