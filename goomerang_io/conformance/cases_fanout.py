"""Group 4: broadcast and publish/subscribe, and the ``message-`` header prefix."""

from __future__ import annotations

import time

from goomerang_proto import codec
from goomerang_proto.pb import goomerang_frame_pb2 as pb

from .cases_messages import KIND, barrier, collect, text_of
from .peer import PeerTimeout, RawPeer
from .suite import Context, Outcome, case, echo_works, failed, msg, ok


def _subscribe(sub: RawPeer, pub: RawPeer, topic: str) -> None:
    """Subscribe ``sub`` and publish probes from ``pub`` until one arrives (no ack on the wire)."""
    sub.send_envelope(codec.pack_subscribe_cmd(topic, creation_ns=time.time_ns()))
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        pub.send_envelope(codec.pack_publish_cmd(topic, msg("probe"), creation_ns=time.time_ns()))
        try:
            _, env = sub.next_envelope(0.05)
        except PeerTimeout:
            continue
        if env.kind == KIND and text_of(env) == "probe":
            return
    raise failed(f"a subscriber of {topic!r} got no publish within 3 s")


def _drain_probes(peer: RawPeer) -> None:
    """Read until a barrier round trip (late probes are dropped)."""
    barrier(peer, "drain")


@case(
    "4.1",
    "A broadcast reaches every client, the sender too, with the message- prefix stripped",
    rule="PROTOCOL.md Commands (BroadcastCmd)",
)
def broadcast(ctx: Context) -> Outcome:
    a, b, c = ctx.peer(), ctx.peer(), ctx.peer()
    for p in (a, b, c):
        barrier(p, "ready")  # the server has registered each connection
    envelope = codec.pack_broadcast_cmd(msg("bcast", {"k": "v"}), creation_ns=time.time_ns())
    frame = pb.Frame.FromString(envelope)
    frame.headers["plain"] = "dropped"
    frame.headers["message-message-x"] = "once"
    a.send_envelope(frame.SerializeToString())
    want = {"k": "v", "message-x": "once"}
    for name, p in (("sender", a), ("B", b), ("C", c)):
        env = collect(p, "bcast")[-1]
        if dict(env.headers) != want or env.is_sync or env.uuid:
            raise failed(
                f"{name} got the broadcast with other headers",
                expected=repr(want),
                got=repr(dict(env.headers)),
            )
    return ok("sender, B and C each got it; message-k -> k, unprefixed dropped, prefix once")


@case(
    "4.2",
    "A publish reaches the topic's subscribers and not an unsubscribed publisher",
    rule="PROTOCOL.md Commands (PublishCmd)",
)
def publish(ctx: Context) -> Outcome:
    pub, sub = ctx.peer(), ctx.peer()
    _subscribe(sub, pub, "t.4.2")
    pub.send_envelope(
        codec.pack_publish_cmd("t.4.2", msg("pub", {"k": "v"}), creation_ns=time.time_ns())
    )
    env = collect(sub, "pub")[-1]
    if dict(env.headers) != {"k": "v"}:
        raise failed("headers differ", expected="{'k': 'v'}", got=repr(dict(env.headers)))
    before = [text_of(e) for e in barrier(pub, "pub-barrier") if e.kind == KIND]
    if before:
        raise failed("the publisher, not subscribed, got the publish", got=repr(before))
    return ok("the subscriber got it with its headers; the publisher did not")


@case(
    "4.3",
    "A subscribed publisher gets its own publish",
    rule="PROTOCOL.md Commands (the publisher included if subscribed)",
)
def publish_self(ctx: Context) -> Outcome:
    a = ctx.peer()
    _subscribe(a, a, "t.4.3")
    return ok("the publisher's own probe came back")


@case("4.4", "Unsubscribe stops delivery", rule="PROTOCOL.md Commands (UnsubscribeCmd)")
def unsubscribe(ctx: Context) -> Outcome:
    pub, sub = ctx.peer(), ctx.peer()
    _subscribe(sub, pub, "t.4.4")
    sub.send_envelope(codec.pack_unsubscribe_cmd("t.4.4", creation_ns=time.time_ns()))
    _subscribe(sub, pub, "t.4.4.marker")  # commands on one connection are handled in order
    _drain_probes(sub)
    pub.send_envelope(codec.pack_publish_cmd("t.4.4", msg("after"), creation_ns=time.time_ns()))
    pub.send_envelope(
        codec.pack_publish_cmd("t.4.4.marker", msg("marker"), creation_ns=time.time_ns())
    )
    seen = [text_of(e) for e in collect(sub, "marker") if e.kind == KIND]
    if "after" in seen:
        raise failed("a publish arrived after unsubscribe", got=repr(seen))
    return ok("nothing arrived on the unsubscribed topic")


@case(
    "4.5",
    "A subscriber that went away does not disturb publishing",
    rule="PROTOCOL.md Commands (a connection that goes away is removed from every topic)",
)
def gone_subscriber(ctx: Context) -> Outcome:
    pub, sub, stay = ctx.peer(), ctx.peer(), ctx.peer()
    _subscribe(sub, pub, "t.4.5")
    _subscribe(stay, pub, "t.4.5")
    _drain_probes(stay)
    sub.close()
    for i in range(3):
        pub.send_envelope(codec.pack_publish_cmd("t.4.5", msg(f"x{i}"), creation_ns=1))
    collect(stay, "x2")
    if not echo_works(pub):
        raise failed("the publisher's connection stopped working")
    return ok("the remaining subscriber got every publish; the publisher is fine")


@case(
    "4.6",
    "A broadcast of an unknown kind is not delivered and the connection stays up",
    rule="PROTOCOL.md Commands (the server must know the kind)",
)
def broadcast_unknown(ctx: Context) -> Outcome:
    a = ctx.peer()
    cmd = pb.BroadcastCmd(kind="goomerang.example.Nope", message=b"")
    a.send_envelope(
        codec.pack_envelope(codec.BROADCAST_CMD, cmd.SerializeToString(), creation_ns=1)
    )
    before = [e.kind for e in barrier(a, "after-unknown-broadcast")]
    if before:
        raise failed("something was delivered", got=repr(before))
    return ok("nothing delivered; the connection echoes")
