"""Misbehaving peers against every runtime: bounded memory, deadlines kept, others unharmed.

Server cases run a goomerang Server in a child process (its RSS is read from
/proc) on each of ``SERVER_RUNTIMES``; a healthy client does sync requests on
the same server meanwhile and must see no error and lose nothing. Client
cases run each of ``CLIENT_DRIVERS`` (asyncio, uvloop, blocking, trio) against a
raw server that misbehaves. There is no blocking server (goomerang_io.sync
holds only a client): the blocking runtime is in the client cases only.
Bounds: the server grows by less than ``RSS_BOUND`` (peak RSS, VmHWM) while
the peer pushes at least five times that (or is throttled by TCP because the
server stopped reading from it); every deadline fires within its option +
0.5 s (issue 11).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from misbehave_clients import CLIENT_DRIVERS
from misbehave_peers import (
    MIB,
    SEND_WAYS,
    SERVER_RUNTIMES,
    TLS_RUNTIMES,
    ChildServer,
    Healthy,
    RawServer,
    empty_close_then_wait,
    masked,
    ping_chunk,
    push,
    raw_socket,
    read_head,
    request_chunk,
    self_signed_cert,
    server_flood,
    server_ping_flood,
    stall,
    tls_client_hello_half,
    upgrade_request,
    upgraded,
    wait_closed,
)

from goomerang_proto import Message
from goomerang_proto.codec import pack, pack_publish_cmd, pack_subscribe_cmd
from goomerang_proto.frames import OP_BINARY, OP_CONTINUATION, build_frame
from goomerang_proto.message import MAX_HEADERS
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

RSS_BOUND_KB = 8 * 1024
PUSH = 5 * 8 * MIB
SLACK = 0.5


def _check_growth(server: ChildServer, rss0: int, what: str, bound_kb: int = RSS_BOUND_KB) -> int:
    _rss, hwm = server.rss()
    growth = hwm - rss0
    print(f"\n[{what}] peak RSS growth {growth} KiB")
    assert growth < bound_kb, f"{what}: server grew by {growth} KiB"
    return growth


def _check_healthy(healthy: Healthy) -> None:
    assert healthy.errors == []
    assert healthy.answered == healthy.sent >= 3


FLOOD_OPTIONS = {"ping_interval": None, "write_limit": 65536}


@pytest.fixture(scope="module", params=SERVER_RUNTIMES)
def flood_server(request: pytest.FixtureRequest) -> Iterator[ChildServer]:
    """One child server per runtime for the flood cases (its peak RSS is reset per case)."""
    with ChildServer(request.param, options=FLOOD_OPTIONS) as server:
        yield server


def _flood(
    server: ChildServer,
    chunk: bytes,
    what: str,
    *,
    prelude: bytes = b"",
    stall_after: float = 0.5,
    budget: float = 15.0,
    bound_kb: int = RSS_BOUND_KB,
) -> Any:
    what = f"{what} {server.runtime}"
    with Healthy(server.addr) as healthy:
        sock = upgraded(server.port)
        with sock:
            if prelude:
                sock.sendall(prelude)
            rss0 = server.reset_peak()
            result = push(sock, chunk, PUSH, stall_after=stall_after, budget=budget)
            print(f"\n[{what}] pushed {result.sent / MIB:.1f} MiB, stalled={result.stalled}")
            assert result.sent >= PUSH or result.stalled or result.closed
            _check_growth(server, rss0, what, bound_kb)
    _check_healthy(healthy)
    return result


# ------------------------------------------------------------------ floods
@pytest.mark.timeout(120)
def test_ping_flood_from_a_non_reader(flood_server: ChildServer) -> None:
    """Issue 11 input 1: Pongs coalesce while unsent; reading goes on; memory stays flat.

    Pings never pause reading, so all 40 MiB must be read: a stall here is 5 s
    without the server taking a byte, and the budget leaves room for a loaded box.
    """
    result = _flood(flood_server, ping_chunk(), "ping flood", stall_after=5.0, budget=90.0)
    assert result.sent >= PUSH, result


@pytest.mark.parametrize("sync", [True, False], ids=["sync-requests", "messages"])
def test_pipelined_requests_from_a_non_reader(flood_server: ChildServer, sync: bool) -> None:
    """Issue 11 input 2: the README echo (send without await) stops reading from a non-reader."""
    result = _flood(flood_server, request_chunk(sync=sync), f"requests sync={sync}")
    assert result.stalled  # its own TCP window throttles it


def test_publish_flood_to_itself_from_a_non_reader(flood_server: ChildServer) -> None:
    """Neighbour: fan-out the peer commands that comes back to it pauses reading from it."""
    subscribe = masked(OP_BINARY, pack_subscribe_cmd("t"))
    one = masked(OP_BINARY, pack_publish_cmd("t", Message(MessageV1(message="x" * 1000))))
    result = _flood(flood_server, one * 60, "publish", prelude=subscribe)
    assert result.stalled or result.closed


@pytest.mark.timeout(120)
@pytest.mark.parametrize("count", [100_000, MAX_HEADERS], ids=["100k-headers", "max-headers"])
def test_header_bomb_to_handlers_that_hold_their_messages(
    flood_server: ChildServer, count: int
) -> None:
    """Neighbour (decode amplification): messages of tiny headers, each held by a handler
    that never ends. Past MAX_HEADERS a message is dropped before it is decoded (a 1 MiB
    one of 100,000 headers grew every runtime by about 350 MiB): the usual 8 MiB bound.
    Up to it, the backlog bound counts the headers (held_size), not the payload only;
    the stated bound is 16 MiB there: max_queue_bytes (4 MiB) plus the running handlers'
    messages plus one read of 256 KiB decoded at once, and tiny headers decode to about
    15 times their wire size (measured 4.5-10.7 MiB)."""
    headers = {f"{i:x}": "" for i in range(count)}
    one = masked(OP_BINARY, pack(Message(MessageV1(message="hold"), headers)))
    bound = RSS_BOUND_KB if count > MAX_HEADERS else 2 * RSS_BOUND_KB
    chunk = one * max(1, 65536 // len(one))
    _flood(flood_server, chunk, f"{count} headers", budget=60.0, bound_kb=bound)


def test_endless_fragments_are_bounded_by_max_message_size(flood_server: ChildServer) -> None:
    """Neighbour: a message that never ends is cut at max_message_size (1009).

    The server sends Close 1009, then half-closes (FIN) and drops what the peer
    still sends until the peer ends TCP or ``close_timeout`` passes, so the
    Close reaches a peer that is still sending (a plain close would reset the
    connection and the peer would see 1006 instead).
    """
    server = flood_server
    first = build_fragment(OP_BINARY, 4000)
    rest = build_fragment(OP_CONTINUATION, 4000) * 16
    what = f"fragments {server.runtime}"
    with Healthy(server.addr) as healthy:
        sock = upgraded(server.port)
        with sock:
            sock.sendall(first)
            rss0 = server.reset_peak()
            result = push(sock, rest, PUSH)
            print(f"\n[{what}] pushed {result.sent / MIB:.1f} MiB, closed={result.closed}")
            _check_growth(server, rss0, what)
            codes = close_codes_received(sock, timeout=10.0)
            assert codes == [1009], codes
    _check_healthy(healthy)


def close_codes_received(sock: socket.socket, timeout: float) -> list[int]:
    """Read what the server sent until EOF or reset; the codes of its Close frames."""
    from goomerang_proto.frames import OP_CLOSE, FrameReader, parse_close_payload

    data = bytearray()
    sock.settimeout(timeout)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    frames: list[tuple[int, bytes]] = []
    try:
        FrameReader(expect_masked=False, max_message_size=1 << 20).feed(bytes(data), frames)
    except Exception as exc:  # a reset may cut the last frame: what was whole still counts
        print(f"[close codes] stream ended mid-frame: {exc}")
    return [parse_close_payload(payload)[0] for op, payload in frames if op == OP_CLOSE]


def build_fragment(opcode: int, size: int) -> bytes:
    from goomerang_proto.frames import build_frame

    return build_frame(opcode, b"f" * size, mask=True, fin=False, mask_key=b"abcd")


def test_await_send_to_a_non_reader_waits_on_drain(flood_server: ChildServer) -> None:
    """Issue 11 input 3: 200 x 100 KB ``await send`` with write_limit=64 KiB do not all return."""
    server = flood_server
    with Healthy(server.addr) as healthy:
        sock = upgraded(server.port)
        with sock:
            rss0 = server.reset_peak()
            before = server.stats()["pushed"]
            push_msg = pack(Message(MessageV1(message="push:200:100000")))
            sock.sendall(masked(OP_BINARY, push_msg))
            seen = []
            deadline = time.monotonic() + 1.0  # an observation window, not a sync point
            while time.monotonic() < deadline:
                seen.append(server.stats()["pushed"] - before)
            print(f"\n[await send {server.runtime}] returned {seen[-1]} of 200")
            assert seen[-1] < 50
            _check_growth(server, rss0, f"await send {server.runtime}")
    _check_healthy(healthy)


# ------------------------------------------------------------------ deadlines
@pytest.mark.parametrize("runtime", SERVER_RUNTIMES)
def test_silent_peer_is_dropped_by_the_pong_deadline(runtime: str) -> None:
    """A peer that neither reads nor answers pings: dropped at ping_interval + ping_timeout."""
    opts = {"ping_interval": 0.3, "ping_timeout": 0.5}
    with ChildServer(runtime, options=opts) as server:
        sock = upgraded(server.port)
        with sock:
            t0 = time.monotonic()
            elapsed = wait_closed(sock, 5.0)
            assert elapsed is not None and elapsed < 0.3 + 0.5 + SLACK, elapsed
            assert time.monotonic() - t0 >= 0.3 + 0.5 - 0.05
        assert server.stats()["connections"] == 0


@pytest.mark.parametrize("runtime", TLS_RUNTIMES)
@pytest.mark.parametrize("sends", ["nothing", "half-client-hello"])
def test_tls_handshake_within_handshake_timeout(
    runtime: str, sends: str, tls_files: tuple[str, str]
) -> None:
    """Issue 11 input 6: TLS is bounded by handshake_timeout, not the loop's 60 s.

    Over ``TLS_RUNTIMES`` only: the trio server has no TLS (README "trio")."""
    opts = {"handshake_timeout": 0.5, "ping_interval": None}
    with ChildServer(runtime, options=opts, tls=list(tls_files)) as server:
        sock = raw_socket(server.port)
        with sock:
            if sends != "nothing":
                sock.sendall(tls_client_hello_half(server.port))
            elapsed = wait_closed(sock, 5.0)
            assert elapsed is not None and elapsed < 0.5 + SLACK, elapsed


@pytest.mark.parametrize("runtime", TLS_RUNTIMES)
def test_slow_authenticate_is_bounded_by_handshake_timeout(runtime: str) -> None:
    """Issue 11 input 6's neighbour: the deadline covers authenticate, not only the head.

    Over ``TLS_RUNTIMES`` only: the trio server has no authenticate (README "trio")."""
    opts = {"handshake_timeout": 0.5, "ping_interval": None}
    with ChildServer(runtime, options=opts, auth_delay=30) as server:
        sock = raw_socket(server.port)
        with sock:
            sock.sendall(upgrade_request(server.port))
            elapsed = wait_closed(sock, 5.0)
            assert elapsed is not None and elapsed < 0.5 + SLACK, elapsed


def test_pipelined_http_requests_from_a_non_reader(flood_server: ChildServer) -> None:
    """Neighbour in the HTTP phase: plain requests (404s here) pipelined by a peer that
    never reads the answers. Reading pauses while a request waits for its answer, so the
    server holds one request and one read, not everything the peer sent (it held all 40
    MiB in the HTTP parser's buffer before)."""
    server = flood_server
    what = f"pipelined HTTP {server.runtime}"
    chunk = f"GET /nope HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode() * 1000
    with Healthy(server.addr) as healthy:
        with raw_socket(server.port) as sock:
            rss0 = server.reset_peak()
            result = push(sock, chunk, PUSH)
            print(f"\n[{what}] pushed {result.sent / MIB:.1f} MiB, stalled={result.stalled}")
            assert result.stalled or result.closed, result
            _check_growth(server, rss0, what)
    _check_healthy(healthy)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("runtime", TLS_RUNTIMES)
def test_bytes_behind_an_upgrade_waiting_for_authenticate_are_not_read(runtime: str) -> None:
    """Neighbour: what a peer sends behind its upgrade request while ``authenticate``
    runs stays in its TCP window (it went to the HTTP parser's buffer, unbounded).

    Over ``TLS_RUNTIMES`` only: the trio server has no authenticate (README "trio")."""
    opts = {"handshake_timeout": 20.0, "ping_interval": None}
    with ChildServer(runtime, options=opts, auth_delay=30) as server:
        with raw_socket(server.port) as sock:
            sock.sendall(upgrade_request(server.port))
            rss0 = server.reset_peak()
            result = push(sock, b"x" * 65536, PUSH)
            print(f"\n[behind the upgrade {runtime}] pushed {result.sent / MIB:.1f} MiB")
            assert result.stalled, result
            _check_growth(server, rss0, f"behind the upgrade {runtime}")


@pytest.mark.parametrize(
    "extra",
    ["Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n", "Sec-WebSocket-Version: 8\r\n"],
    ids=["two-keys", "versions-13-and-8"],
)
def test_repeated_handshake_headers_get_400(flood_server: ChildServer, extra: str) -> None:
    """Issue 11 input 7 (RFC 6455 11.3.1, 11.3.5, 4.2.1)."""
    sock = raw_socket(flood_server.port)
    with sock:
        sock.sendall(upgrade_request(flood_server.port, extra))
        assert read_head(sock).startswith(b"HTTP/1.1 400 ")


# ------------------------------------------------------------- both directions
@pytest.mark.parametrize("runtime", SERVER_RUNTIMES)
def test_two_endpoints_pushing_at_each_other_do_not_deadlock(runtime: str) -> None:
    """App sends both ways at once (25 MB each), write_limit 64 KiB: both finish."""
    from goomerang_io import Client, Server
    from goomerang_io.loop import new_event_loop

    n, size = 100, 256 * 1024

    async def main() -> None:
        got_server, got_client = asyncio.Event(), asyncio.Event()
        on_server, on_client = push_handlers(n, size, got_server.set, got_client.set)

        server = Server("127.0.0.1:0", write_limit=65536, ping_interval=None)
        server.handle(MessageV1, on_server)
        server.register_message(ReplyV1)
        await server.start()
        client = Client(server.addr, write_limit=65536)
        client.handle(ReplyV1, on_client)
        await client.connect()
        try:
            await client.send(Message(MessageV1(message="push")))
            payload = Message(MessageV1(message="c" * size))
            async with asyncio.timeout(30.0):
                for _ in range(n):
                    await client.send(payload)
                await got_server.wait()
                await got_client.wait()
        finally:
            await client.close()
            await server.shutdown()

    if runtime == "trio":
        trio_push_both_ways(n, size)
    elif runtime == "uvloop":
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())


def push_handlers(
    n: int, size: int, server_got_all: Callable[[], None], client_got_all: Callable[[], None]
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The handlers of the case above, for any runtime: a "push" makes the server send
    ``n`` messages of ``size`` bytes; each side calls its callback once it received ``n``."""
    counts = {"server": 0, "client": 0}

    async def on_server(sender: Any, message: Message[Any]) -> None:
        if message.payload.message.startswith("push"):
            for _ in range(n):
                await sender.send(Message(ReplyV1(message="s" * size)))
            return
        counts["server"] += 1
        if counts["server"] == n:
            server_got_all()

    def on_client(_sender: Any, _message: Message[Any]) -> None:
        counts["client"] += 1
        if counts["client"] == n:
            client_got_all()

    return on_server, on_client


def trio_push_both_ways(n: int, size: int) -> None:
    """The case above on goomerang_io.trio's Server and Client in one trio run."""
    import trio

    from goomerang_io.trio import Client as TrioClient
    from goomerang_io.trio import Server as TrioServer

    async def main() -> None:
        got_server, got_client = trio.Event(), trio.Event()
        on_server, on_client = push_handlers(n, size, got_server.set, got_client.set)

        server = TrioServer("127.0.0.1:0", write_limit=65536, ping_interval=None)
        server.handle(MessageV1, on_server)
        server.register_message(ReplyV1)
        async with server:
            client = TrioClient(server.addr, write_limit=65536)
            client.handle(ReplyV1, on_client)
            async with client:
                await client.send(Message(MessageV1(message="push")))
                payload = Message(MessageV1(message="c" * size))
                with trio.fail_after(30.0):
                    for _ in range(n):
                        await client.send(payload)
                    await got_server.wait()
                    await got_client.wait()

    trio.run(main)


# ------------------------------------------------------------------ clients
@pytest.mark.parametrize("how", SEND_WAYS)
@pytest.mark.parametrize("driver", sorted(CLIENT_DRIVERS))
def test_client_sending_to_a_stalled_server_fails_within_ping_timeout(
    driver: str, how: str
) -> None:
    """Issue 11 input 4's mirror: sends (publish and broadcast too) wait on drain, the
    pong deadline drops the server. (The trio client's publish and broadcast waited for
    nothing: 76 MiB queued to a stalled server, found by a break-it pass.)"""
    server = RawServer(stall)
    try:
        opts = {"write_limit": 65536, "heartbeat_interval": 0.5, "ping_timeout": 1.0}
        out = CLIENT_DRIVERS[driver].send_until_stuck(server.addr, 200, 100_000, opts, how)
    finally:
        server.close()
    print(f"\n[client {driver} to stalled server] {out}")
    assert out["returned"] < 200
    assert out["error"] is not None and "ConnectionLost" in out["error"]
    assert out["error_after"] < 0.5 + 1.0 + SLACK
    assert out["rss_growth_kb"] < RSS_BOUND_KB


@pytest.mark.parametrize("driver", sorted(CLIENT_DRIVERS))
def test_client_close_returns_within_close_timeout(driver: str) -> None:
    """Issue 11 input 5's mirror: close() against a server that stopped reading."""
    server = RawServer(stall)
    try:
        out = CLIENT_DRIVERS[driver].close_against_stalled(
            server.addr, {"close_timeout": 1.0, "heartbeat_interval": None}
        )
    finally:
        server.close()
    assert out["seconds"] < 1.0 + SLACK, out
    assert out["status"] == "CLOSED"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("driver", sorted(CLIENT_DRIVERS))
def test_ping_flood_from_a_server_that_never_reads(driver: str) -> None:
    """Input 1's client mirror: the client keeps reading, Pongs coalesce, memory stays flat."""
    sent = [0]
    server = RawServer(server_ping_flood(PUSH, sent))
    try:
        out = CLIENT_DRIVERS[driver].until_closed(server.addr)
    finally:
        server.close()
    print(f"\n[client {driver} ping flood] pushed {sent[0] / MIB:.1f} MiB, {out}")
    assert sent[0] >= PUSH
    assert out["rss_growth_kb"] < RSS_BOUND_KB
    assert out["status"] == "CLOSED"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("driver", sorted(CLIENT_DRIVERS))
def test_messages_from_a_server_that_never_reads(driver: str) -> None:
    """Input 2's client mirror: the client's README echo answers every message of a server
    that never reads; reading pauses, the server's TCP window throttles it, memory stays
    flat (the trio client's handler replies were never throttled: 40 MiB, break-it pass)."""
    sent = [0]
    one = build_frame(OP_BINARY, pack(Message(MessageV1(message="m" * 1000))))
    server = RawServer(server_flood(one, PUSH, sent))
    try:
        out = CLIENT_DRIVERS[driver].until_closed(server.addr)
    finally:
        server.close()
    print(f"\n[client {driver} messages] pushed {sent[0] / MIB:.1f} MiB, {out}")
    assert sent[0] < PUSH  # throttled
    assert out["rss_growth_kb"] < RSS_BOUND_KB
    assert out["status"] == "CLOSED"


@pytest.mark.parametrize("driver", sorted(CLIENT_DRIVERS))
def test_empty_close_from_the_server_is_no_error(driver: str) -> None:
    """Issue 11 input 8: 1005 (a Close without status) is a clean close; Go's status sequence."""
    server = RawServer(empty_close_then_wait)
    try:
        out = CLIENT_DRIVERS[driver].clean_close_from_server(server.addr)
    finally:
        server.close()
    assert out["errors"] == []
    assert out["code"] == 1005
    assert out["statuses"][-3:] == ["RUNNING", "CLOSING", "CLOSED"]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    return str(cert), str(key)


def test_socket_helper_sees_a_close() -> None:
    """The suite's own EOF detector: a closed peer is seen as closed."""
    a, b = socket.socketpair()
    with a, b:
        b.close()
        assert wait_closed(a, 1.0) is not None
