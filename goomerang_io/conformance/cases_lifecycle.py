"""Groups 9-10: graceful shutdown, keep-alive and timeouts."""

from __future__ import annotations

import time

from goomerang_proto import frames as fr

from .cases_frames import close_code
from .peer import PeerClosed, PeerTimeout
from .suite import Context, Outcome, case, failed, info, ok

IDLE_SECONDS = 1.5


@case(
    "9.1",
    "On SIGTERM the server closes every connection with 1000/1001 and exits 0",
    rule="PROTOCOL.md Close handshake and Status (graceful shutdown); Go: Close 1000 each",
    needs="managed",
)
def graceful_shutdown(ctx: Context) -> Outcome:
    peers = [ctx.peer(), ctx.peer()]
    code, waited = None, 0.0
    proc = ctx.target.process
    assert proc is not None
    start = time.monotonic()
    ctx.target.terminate(0)  # signal only; the wait is below
    codes = []
    for p in peers:
        frame = p.wait_close(10.0)
        if frame is None:
            raise failed("a connection got no Close frame within 10 s", expected="88 02 03 e8")
        codes.append(close_code(frame.payload))
        p.send_frame(fr.OP_CLOSE, frame.payload[:2])  # answer as a client does
    try:
        code = proc.wait(10.0)
    except Exception as exc:
        raise failed("the process did not exit within 10 s of SIGTERM") from exc
    waited = time.monotonic() - start
    ctx.target.process = None
    if any(c not in (1000, 1001) for c in codes):
        raise failed(f"close codes {codes}", expected="1000 or 1001")
    if code != 0:
        raise failed(f"exit status {code}", expected="0")
    return ok(f"Close {codes} on both connections, exit 0 after {waited:.2f} s")


@case(
    "9.2",
    "After SIGTERM the server accepts no new WebSocket connection",
    rule="PROTOCOL.md Status (CLOSING, CLOSED end there)",
    needs="managed",
)
def no_new_after_shutdown(ctx: Context) -> Outcome:
    peer = ctx.peer()
    proc = ctx.target.process
    assert proc is not None
    ctx.target.terminate(0)
    frame = peer.wait_close(10.0)
    if frame is None:
        raise failed("no Close within 10 s of SIGTERM")
    peer.send_frame(fr.OP_CLOSE, frame.payload[:2])
    try:
        late = ctx.raw()
        head = late.upgrade()
    except (OSError, PeerClosed, PeerTimeout):
        return ok("new connections refused once the shutdown began")
    finally:
        proc.wait(10.0)
        ctx.target.process = None
    if head.status == 101:
        raise failed("a new upgrade was accepted during shutdown")
    return ok(f"a new upgrade during shutdown got {head.status}")


@case(
    "10.1",
    "A silent peer after the upgrade: closed by the server or kept",
    rule="PROTOCOL.md Keep-alive (the Go server never times out a silent peer)",
)
def silent_peer(ctx: Context) -> Outcome:
    peer = ctx.peer()
    half = ctx.raw()
    half.send(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # half a request head
    deadline = time.monotonic() + IDLE_SECONDS
    pinged = False
    closed = False
    while time.monotonic() < deadline:
        try:
            frame = peer.read_frame(max(0.001, deadline - time.monotonic()))
        except PeerTimeout:
            break
        except PeerClosed:
            closed = True
            break
        pinged = pinged or frame.opcode == fr.OP_PING
    half_closed = half.read_until_eof(0.01)
    raise info(
        f"in {IDLE_SECONDS} s: silent connection {'closed' if closed else 'kept'}, "
        f"{'pinged' if pinged else 'not pinged'}; half-sent request head "
        f"{'closed' if half_closed else 'kept'}"
    )
