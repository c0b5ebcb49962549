"""Every client runtime against every server runtime of ours: the roundtrip features.

Clients: asyncio (standard loop), asyncio on uvloop, the blocking client and
the trio client (``our_clients``). Servers: the asyncio and the trio echo
server in a child process (``our_server.py``: MessageV1 echoed, a sync reply
gets ``echo: 1``). Cases: send, send_sync, broadcast, publish/subscribe, the
client's close, and the server's graceful shutdown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from our_clients import CLIENTS, Peer, open_client
from our_peers import Server, our_server

from goomerang_proto import Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

SERVERS = ["asyncio", "trio"]
N = 50


def msg(text: str, headers: dict[str, str] | None = None) -> Message[MessageV1]:
    return Message(MessageV1(message=text), dict(headers or {}))


def not_probe(m: Message[Any]) -> bool:
    return not m.payload.message.startswith("probe")


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = our_server(request.param)
    try:
        assert srv.loop.startswith(request.param), srv.loop
        yield srv
        assert srv.terminate(20.0) == 0, srv.info()
    finally:
        srv.kill()


@pytest.fixture(params=CLIENTS)
def opened(request: pytest.FixtureRequest) -> Iterator[Callable[..., Peer]]:
    peers: list[Peer] = []

    def make(addr: str, **options: Any) -> Peer:
        peers.append(open_client(request.param, addr, **options))
        return peers[-1]

    yield make
    for peer in peers:
        peer.stop()


def live(send_probe: Callable[[], object], receiver: Peer) -> None:
    """Probe until ``receiver`` got one: its subscription (or registration) is in effect."""
    for _ in range(100):
        send_probe()
        try:
            receiver.receive(lambda m: not not_probe(m), 0.05)
            return
        except AssertionError:
            continue
    raise AssertionError("no probe arrived")


def test_send(server: Server, opened: Callable[..., Peer]) -> None:
    peer = opened(server.addr)
    for i in range(N):
        peer.send(msg(f"m{i}", {"i": str(i), "ü": "✓"}))
    for i in range(N):  # our servers answer one connection's messages in order
        got = peer.receive(lambda m: True)
        assert got.payload.message == f"m{i}" and got.headers == {"i": str(i), "ü": "✓"}


def test_send_sync(server: Server, opened: Callable[..., Peer]) -> None:
    peer = opened(server.addr)
    for i in range(N):
        reply = peer.send_sync(msg(f"s{i}", {"i": str(i)}))
        assert reply.payload.message == f"s{i}" and reply.headers == {"i": str(i), "echo": "1"}
    assert peer.inbox.empty()


def test_broadcast(server: Server, opened: Callable[..., Peer]) -> None:
    sender, a, b = opened(server.addr), opened(server.addr), opened(server.addr)
    for receiver in (a, b):
        live(lambda: sender.broadcast(msg("probe")), receiver)
    for i in range(N):
        sender.broadcast(msg(f"b{i}"))
    for peer in (a, b, sender):  # the sender is a client too: it gets its own broadcast
        assert [peer.receive(not_probe).payload.message for _ in range(N)] == [
            f"b{i}" for i in range(N)
        ]


def test_publish_subscribe(server: Server, opened: Callable[..., Peer]) -> None:
    sub, pub = opened(server.addr), opened(server.addr)
    sub.subscribe("news")
    live(lambda: pub.publish("news", msg("probe")), sub)
    for i in range(N):
        pub.publish("news", msg(f"p{i}", {"i": str(i)}))
        pub.publish("other", msg(f"x{i}"))  # nobody listens there
    got = [sub.receive(not_probe) for _ in range(N)]
    assert [(m.payload.message, m.headers) for m in got] == [
        (f"p{i}", {"i": str(i)}) for i in range(N)
    ]
    assert pub.inbox.empty()


def test_close(server: Server, opened: Callable[..., Peer]) -> None:
    peer = opened(server.addr)
    assert peer.send_sync(msg("before")).payload.message == "before"
    peer.close()
    assert peer.status is Status.CLOSED and peer.close_code == 1000
    assert peer.closed.is_set() and peer.errors == []
    assert peer.statuses == [Status.RUNNING, Status.CLOSING, Status.CLOSED]


@pytest.mark.parametrize("kind", SERVERS)
def test_server_shutdown(kind: str, opened: Callable[..., Peer]) -> None:
    srv = our_server(kind)
    try:
        peer = opened(srv.addr)
        assert peer.send_sync(msg("before")).payload.message == "before"
        assert srv.terminate(20.0) == 0, srv.info()
    finally:
        srv.kill()
    assert peer.closed.wait(10.0), peer.statuses
    assert peer.status is Status.CLOSED and peer.close_code == 1000
    assert peer.errors == [], peer.errors  # a graceful close by the server is no error
