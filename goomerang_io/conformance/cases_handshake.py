"""Group 1: the opening handshake (RFC 6455 section 4)."""

from __future__ import annotations

from goomerang_proto.testing.wire import HttpHead, expected_accept, upgrade_request

from .peer import PeerClosed, PeerTimeout
from .suite import Context, Outcome, case, failed, info, ok


def _answer(ctx: Context, request: bytes) -> HttpHead:
    peer = ctx.raw()
    peer.send(request)
    try:
        return peer.read_head()
    except PeerClosed as exc:
        raise info("the server closed the connection without an HTTP answer") from exc
    except PeerTimeout as exc:
        raise failed(f"no answer within {ctx.timeout} s", expected="an HTTP response") from exc


def _refused(head: HttpHead, want: int) -> Outcome:
    if head.status == 101:
        raise failed(
            "the server accepted the upgrade",
            expected=f"HTTP {want}",
            got=head.raw.decode("latin-1"),
        )
    if head.status == want:
        return ok(f"answered {head.status} {head.reason}")
    if 400 <= head.status < 500:
        raise info(f"refused with {head.status} {head.reason} (the RFC names {want})")
    raise failed(f"answered {head.status} {head.reason}", expected=f"HTTP {want}")


def _host(ctx: Context) -> str:
    return ctx.target.addr


@case("1.1", "A valid upgrade gets 101 with the right Sec-WebSocket-Accept", rule="RFC 6455 4.2.2")
def valid_upgrade(ctx: Context) -> Outcome:
    peer = ctx.raw()
    head = peer.upgrade()
    want = expected_accept(peer.key)
    problems = []
    if head.status != 101:
        problems.append(f"status {head.status}, not 101")
    if not any("websocket" in v.lower() for v in head.get("Upgrade")):
        problems.append("no Upgrade: websocket")
    if not any("upgrade" in v.lower() for v in head.get("Connection")):
        problems.append("no Connection: Upgrade")
    if head.get("Sec-WebSocket-Accept") != [want]:
        problems.append(f"Sec-WebSocket-Accept {head.get('Sec-WebSocket-Accept')} (want {want})")
    if problems:
        raise failed("; ".join(problems), expected=want, got=head.raw.decode("latin-1"))
    return ok("101 Switching Protocols, Upgrade, Connection and Accept correct")


@case(
    "1.2",
    "The 101 selects no extension and no subprotocol when none was offered",
    rule="RFC 6455 4.1 (client must fail otherwise); PROTOCOL.md Transport",
)
def no_extension(ctx: Context) -> Outcome:
    head = ctx.raw().upgrade()
    extra = head.get("Sec-WebSocket-Extensions") + head.get("Sec-WebSocket-Protocol")
    if extra:
        raise failed("the server selected what was not offered", got=", ".join(extra))
    return ok("no Sec-WebSocket-Extensions, no Sec-WebSocket-Protocol")


@case("1.3", "An upgrade on another path is not accepted", rule="PROTOCOL.md Transport (404)")
def other_path(ctx: Context) -> Outcome:
    return _refused(_answer(ctx, upgrade_request(_host(ctx), "/not-the-endpoint")), 404)


@case("1.4", "An upgrade without Sec-WebSocket-Key gets 400", rule="RFC 6455 4.2.1 item 5")
def missing_key(ctx: Context) -> Outcome:
    return _refused(_answer(ctx, upgrade_request(_host(ctx), omit=("Sec-WebSocket-Key",))), 400)


@case(
    "1.5",
    "An unsupported Sec-WebSocket-Version gets 426 naming version 13",
    rule="RFC 6455 4.2.2 and 4.4",
)
def bad_version(ctx: Context) -> Outcome:
    head = _answer(ctx, upgrade_request(_host(ctx), version="8"))
    outcome = _refused(head, 426)
    if head.get("Sec-WebSocket-Version") != ["13"]:
        raise info(
            f"refused with {head.status} but without Sec-WebSocket-Version: 13",
            got=head.raw.decode("latin-1"),
        )
    return outcome


@case("1.6", "An upgrade with POST is not accepted", rule="RFC 6455 4.1 (method must be GET)")
def post_method(ctx: Context) -> Outcome:
    head = _answer(ctx, upgrade_request(_host(ctx), method="POST"))
    if head.status in (400, 405):
        return ok(f"answered {head.status} {head.reason}")
    return _refused(head, 400)


@case("1.7", "A request without Upgrade: websocket is not accepted", rule="RFC 6455 4.2.1 item 3")
def missing_upgrade(ctx: Context) -> Outcome:
    head = _answer(ctx, upgrade_request(_host(ctx), omit=("Upgrade",)))
    if head.status in (400, 426):
        return ok(f"answered {head.status} {head.reason}")
    return _refused(head, 400)


@case(
    "1.8",
    "An upgrade with two Sec-WebSocket-Key headers gets 400",
    rule="RFC 6455 11.3.1 (must not appear more than once) and 4.2.1",
)
def duplicate_key(ctx: Context) -> Outcome:
    request = upgrade_request(
        _host(ctx), headers=(("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="),)
    )
    return _refused(_answer(ctx, request), 400)


@case(
    "1.9",
    "A 64 KiB request head is refused or served",
    rule="no limit in RFC 6455; servers usually bound the head (431)",
)
def huge_head(ctx: Context) -> Outcome:
    request = upgrade_request(_host(ctx), headers=(("X-Filler", "a" * 65536),))
    head = _answer(ctx, request)
    if head.status == 101:
        raise info("accepted a 64 KiB request head (no limit below that)")
    if head.status in (400, 413, 431):
        return ok(f"refused with {head.status} {head.reason}")
    raise failed(f"answered {head.status} {head.reason}", expected="101, 400 or 431")
