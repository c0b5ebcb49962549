"""The Go goomerang v0.3.0 client (``refclient``) against each of our servers.

Every feature, one refclient mode each: async send, send_sync, publish/
subscribe, broadcast, large messages, unicode headers and graceful shutdown.
Each case runs against our server on the standard asyncio loop, on uvloop, with
two worker processes (broadcast and pub/sub then cross the backplane) and on
trio, and
against the Go refserver itself: the reference the same assertions hold for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from goref_peers import Child, Server, go_server, our_server, refclient, refclient_argv

SERVERS = ["go", "asyncio", "uvloop", "workers2", "trio"]
LOOPS = {
    "asyncio": "asyncio.unix_events",
    "uvloop": "uvloop",
    "workers2": "supervisor",
    "trio": "trio",
}
N = 200


def start(kind: str) -> Server:
    server = go_server() if kind == "go" else our_server(kind)
    if kind != "go":
        assert server.loop == LOOPS[kind], f"{kind} server runs on {server.loop}"
    return server


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = start(request.param)
    try:
        yield srv
        assert srv.terminate(20.0) == 0, srv.info()
    finally:
        srv.kill()


def test_send(server: Server) -> None:
    out = refclient("send", server.addr, "-n", str(N))
    assert out["complete"] and out["received"] == N and out["send_errors"] == 0, out


def test_send_sync(server: Server) -> None:
    out = refclient("sync", server.addr, "-n", str(N), "-c", "8")
    assert out["complete"] and out["ok"] == N, out
    assert out["bad_replies"] == 0 and out["errors"] == 0, out


def test_publish_subscribe(server: Server) -> None:
    # -linger: keeps counting after N arrived, so a duplicate would show as N + 1
    out = refclient("pubsub", server.addr, "-n", str(N), "-linger", "200ms", "-topic", "t.go")
    assert out["complete"] and out["received"] == N and out["publish_errors"] == 0, out


def test_broadcast(server: Server) -> None:
    n, clients = 50, 3
    out = refclient(
        "broadcast", server.addr, "-n", str(n), "-clients", str(clients), "-linger", "200ms"
    )
    assert out["complete"] and out["delivered"] == n * clients, out
    assert out["per_receiver_min"] == out["per_receiver_max"] == n, out
    # The Go server broadcasts to the sender's own connection too; so do we.
    assert out["sender_received"] == n, out


@pytest.mark.parametrize("size", [64 * 1024, 1000 * 1024])
def test_large_messages(server: Server, size: int) -> None:
    out = refclient("big", server.addr, "-size", str(size))
    assert out["complete"] and out["async_ok"] and out["sync_ok"], out
    assert out["sync_len"] == size, out


def test_unicode_headers(server: Server) -> None:
    out = refclient("headers", server.addr)
    assert out["complete"], out
    for case in ("async_uni", "async_none", "sync_uni", "sync_none"):
        assert out[f"{case}_ok"], (case, out)


@pytest.mark.parametrize("kind", SERVERS)
def test_graceful_shutdown(kind: str) -> None:
    """SIGTERM: the Go client gets Close 1000, closes cleanly; the server exits 0."""
    server = start(kind)
    watcher = Child(refclient_argv("watch", server.addr, "-timeout", "2s"))
    try:
        assert watcher.readline(15.0) == "CONNECTED"
        assert server.terminate(20.0) == 0, server.info()
        out = json.loads(watcher.readline(15.0))
        assert watcher.wait(15.0) == 0, watcher.info()
    finally:
        watcher.kill()
        server.kill()
    assert out["before_ok"] and out["closed"], out
    assert out["errors"] == [], out  # a clean Close 1000: nothing for the error hook
    assert out["statuses"][-1] == 3, out  # ws.StatusClosed
