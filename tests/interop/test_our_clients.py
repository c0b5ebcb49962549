"""Our clients (asyncio on the standard loop and on uvloop, blocking) against the Go refserver.

The Go server echoes MessageV1 with its headers (a sync request gets ``echo: 1``
added) and relays broadcasts and publishes; each case checks every message
that comes back, byte for byte where it matters. Pub/sub also pairs our
clients with the Go client: a Go publisher to our subscriber, our publisher to
a Go subscriber. A subscribe has no acknowledgement on the wire, so the
publisher first sends probes until the subscriber has seen one. The Go server
runs a handler per message concurrently, so echoes may come back in any order:
the cases compare what arrived as a whole (every message once, nothing else).
"""

from __future__ import annotations

import json
import select
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from goref_peers import Child, Server, go_server, refclient_argv
from our_clients import CLIENTS, Peer, open_client

from goomerang_proto import Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

N = 100
UNICODE_HEADERS = {"uni": "héllo wörld ✓ 日本語 🚀", "empty": "", "ключ": "значение", "k": "v"}


def msg(text: str, headers: dict[str, str] | None = None) -> Message[MessageV1]:
    return Message(MessageV1(message=text), dict(headers or {}))


def text_is(text: str) -> Callable[[Message[Any]], bool]:
    return lambda m: isinstance(m.payload, MessageV1) and m.payload.message == text


def text_starts(prefix: str) -> Callable[[Message[Any]], bool]:
    return lambda m: isinstance(m.payload, MessageV1) and m.payload.message.startswith(prefix)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = go_server()
    try:
        yield srv
        assert srv.terminate(20.0) == 0, srv.info()
    finally:
        srv.kill()


@pytest.fixture(params=CLIENTS)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def opened(runtime: str) -> Iterator[Callable[..., Peer]]:
    """``opened(addr, **options)``: a connected client of the runtime, stopped after the test."""
    peers: list[Peer] = []

    def make(addr: str, **options: Any) -> Peer:
        peer = open_client(runtime, addr, **options)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.stop()


def received(peer: Peer, n: int) -> list[tuple[str, dict[str, str]]]:
    """The next ``n`` non-probe messages as sorted (text, headers) pairs."""
    got = [peer.receive(lambda m: not text_starts("probe")(m)) for _ in range(n)]
    return sorted((m.payload.message, m.headers) for m in got)


def until_probe_seen(send_probe: Callable[[], None], seen: Callable[[], bool]) -> None:
    """Send probes (one per 50 ms, 200 at most) until ``seen()``: the subscription is live."""
    for _ in range(200):
        send_probe()
        if seen():
            return
    raise AssertionError("no probe arrived: the subscription never took effect")


def test_send(server: Server, opened: Callable[..., Peer]) -> None:
    peer = opened(server.addr)
    for i in range(N):
        assert peer.send(msg(f"m{i}", {"idx": str(i)})) == len(f"m{i}") + 2
    first = peer.receive(lambda m: True)
    assert first.kind == "goomerang.example.MessageV1" and not first.is_sync
    peer.inbox.put(first)
    assert received(peer, N) == sorted([(f"m{i}", {"idx": str(i)}) for i in range(N)])


def test_send_sync(server: Server, opened: Callable[..., Peer]) -> None:
    peer = opened(server.addr)
    for i in range(N):
        reply = peer.send_sync(msg(f"s{i}", {"idx": str(i)}))
        assert reply.payload == MessageV1(message=f"s{i}")
        assert reply.headers == {"idx": str(i), "echo": "1"}
    assert peer.inbox.empty()  # sync replies go to send_sync, not to the handler


def test_publish_subscribe_between_our_clients(server: Server, opened: Callable[..., Peer]) -> None:
    sub, pub = opened(server.addr), opened(server.addr)
    sub.subscribe("t.ours")
    until_probe_seen(
        lambda: pub.publish("t.ours", msg("probe")), lambda: _drain_probe(sub, timeout=0.05)
    )
    for i in range(N):
        pub.publish("t.ours", msg(f"m{i}", {"idx": str(i)}))
    assert received(sub, N) == sorted([(f"m{i}", {"idx": str(i)}) for i in range(N)])
    assert pub.inbox.empty()  # not subscribed: the publisher gets nothing


def _drain_probe(peer: Peer, timeout: float) -> bool:
    try:
        peer.receive(text_starts("probe"), timeout)
    except AssertionError:
        return False
    return True


def test_go_publisher_to_our_subscriber(server: Server, opened: Callable[..., Peer]) -> None:
    sub = opened(server.addr)
    sub.subscribe("t.go2py")
    go = Child(
        refclient_argv("publish", server.addr, "-n", str(N), "-topic", "t.go2py", "-probe"),
        stdin=True,
    )
    try:
        sub.receive(text_starts("probe"))
        go.write_line("go")  # the subscription is live: publish the counted messages
        out = json.loads(go.readline(20.0))
        assert go.wait() == 0, go.info()
    finally:
        go.kill()
    assert out["complete"] and out["published"] == N, out
    want = [(f"m{i}", {"idx": str(i), "from": "go-ünï"}) for i in range(N)]
    assert received(sub, N) == sorted(want)


def test_our_publisher_to_go_subscriber(server: Server, opened: Callable[..., Peer]) -> None:
    pub = opened(server.addr)
    go = Child(
        refclient_argv(
            "subscribe", server.addr, "-n", str(N), "-topic", "t.py2go", "-linger", "200ms"
        )
    )
    try:
        assert go.readline(15.0) == "SUBSCRIBED"
        for _ in range(200):  # probes until the Go subscriber says it saw one
            pub.publish("t.py2go", msg("probe"))
            if _line_ready(go):
                break
        assert go.readline() == "PROBED"
        for i in range(N):
            pub.publish("t.py2go", msg(f"m{i}", {"idx": str(i), "from": "py-ünï"}))
        out = json.loads(go.readline(20.0))
        assert go.wait() == 0, go.info()
    finally:
        go.kill()
    assert out["complete"] and out["received"] == N and out["duplicates"] == 0, out
    assert out["headers_ok"] == N, out


def _line_ready(child: Child) -> bool:
    assert child.proc.stdout is not None
    return bool(select.select([child.proc.stdout], [], [], 0.05)[0])


def test_broadcast(server: Server, opened: Callable[..., Peer]) -> None:
    sender = opened(server.addr)
    receivers = [opened(server.addr) for _ in range(3)]
    for r in receivers:  # every receiver is registered once it saw a probe
        until_probe_seen(lambda: sender.broadcast(msg("probe")), lambda r=r: _drain_probe(r, 0.05))
    n = 20
    for i in range(n):
        sender.broadcast(msg(f"b{i}", {"idx": str(i)}))
    want = sorted([(f"b{i}", {"idx": str(i)}) for i in range(n)])
    for peer in [*receivers, sender]:  # the Go server broadcasts to the sender too
        assert received(peer, n) == want


@pytest.mark.parametrize("size", [900 * 1024, 3 * 1024 * 1024])
def test_large_messages(server: Server, opened: Callable[..., Peer], size: int) -> None:
    # the Go peer accepts any size; ours takes up to max_message_size (1 MiB by default)
    peer = opened(server.addr, max_message_size=4 << 20)
    text = "".join(chr(97 + (i * 7) % 26) for i in range(size))
    peer.send(msg(text, {"big": "async"}))
    got = peer.receive(lambda m: True)
    assert got.payload.message == text and got.headers == {"big": "async"}
    reply = peer.send_sync(msg(text, {"big": "sync"}))
    assert reply.payload.message == text and reply.headers == {"big": "sync", "echo": "1"}


def test_unicode_headers(server: Server, opened: Callable[..., Peer]) -> None:
    peer = opened(server.addr)
    peer.send(msg("h-uni", UNICODE_HEADERS))
    assert peer.receive(lambda m: True).headers == UNICODE_HEADERS
    peer.send(msg("h-none"))
    assert peer.receive(lambda m: True).headers == {}
    reply = peer.send_sync(msg("hs-uni", UNICODE_HEADERS))
    assert reply.headers == {**UNICODE_HEADERS, "echo": "1"}
    assert peer.send_sync(msg("hs-none")).headers == {"echo": "1"}


def shut_down_go_server(opened: Callable[..., Peer]) -> Peer:
    """Connect, SIGTERM the Go server; it sends Close 1000 and exits 0 once our client answered."""
    srv = go_server()
    try:
        peer = opened(srv.addr)
        assert peer.send_sync(msg("before")).payload.message == "before"
        assert srv.terminate(10.0) == 0, srv.info()  # it waits up to 5 s for each answer
        assert peer.closed.wait(10.0), peer.statuses
    finally:
        srv.kill()
    return peer


def test_graceful_shutdown(opened: Callable[..., Peer]) -> None:
    """A Close 1000 from the server is no error (the Go client reports none: refclient watch)."""
    peer = shut_down_go_server(opened)
    assert peer.close_code == 1000 and peer.status is Status.CLOSED
    assert peer.errors == [], peer.errors


def test_server_close_goes_through_closing(opened: Callable[..., Peer]) -> None:
    """Go's sequence when the server closes: RUNNING -> CLOSING -> CLOSED (refclient watch)."""
    peer = shut_down_go_server(opened)
    assert peer.statuses == [Status.RUNNING, Status.CLOSING, Status.CLOSED], peer.statuses
