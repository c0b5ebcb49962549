"""Queue groups across nodes (Redis Streams consumer groups), against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis_server import RedisServer
from util import poll_until, run

from goomerang_io import Client, Server
from goomerang_io.backplane.redis import RedisBackplane
from goomerang_proto import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

WAIT = 5.0


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


class Member:
    """A client with an inbox (texts received)."""

    def __init__(self, client: Client, node: int) -> None:
        self.client = client
        self.node = node
        self.got: list[str] = []
        self.changed = asyncio.Event()

    def put(self, text: str) -> None:
        self.got.append(text)
        self.changed.set()


@asynccontextmanager
async def cluster(url: str, n: int, **bp: Any) -> AsyncIterator[list[Server]]:
    """``n`` goomerang nodes sharing one Redis."""
    async with AsyncExitStack() as stack:
        servers = []
        for i in range(n):
            server = Server(
                "127.0.0.1:0",
                backplane=RedisBackplane(url, node_id=f"node{i}", **bp),
                on_error=lambda e: print("ERR", repr(e)),
            )
            server.register_message(MessageV1)
            await server.start()
            await asyncio.wait_for(server.backplane.wait_connected(), WAIT)
            stack.push_async_callback(server.shutdown)
            servers.append(server)
        yield servers


async def member(stack: AsyncExitStack, server: Server, node: int) -> Member:
    client = Client(server.addr, heartbeat_interval=None)
    m = Member(client, node)
    client.handle(MessageV1, lambda _s, msg: m.put(msg.payload.message))
    await client.connect()
    stack.push_async_callback(client.close)
    return m


def count(members: list[Member], prefix: str) -> int:
    """Texts starting with ``prefix`` (or equal to it, when it ends with ``$``)."""
    if prefix.endswith("$"):
        return sum(1 for m in members for t in m.got if t == prefix[:-1])
    return sum(1 for m in members for t in m.got if t.startswith(prefix))


async def wait_total(members: list[Member], prefix: str, want: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while count(members, prefix) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        waits = [asyncio.ensure_future(m.changed.wait()) for m in members]
        await asyncio.wait(waits, timeout=min(left, 1.0), return_when="FIRST_COMPLETED")
        for w in waits:
            w.cancel()
        for m in members:
            m.changed.clear()


async def probe_until_every_node_serves(
    publisher: Client, members: list[Member], nodes: int
) -> None:
    """Joins reach Redis without an acknowledgement to the client: probe until all consume."""
    deadline = time.monotonic() + 15
    n = 0
    while time.monotonic() < deadline:
        n += 1
        await publisher.publish("jobs", Message(MessageV1(message=f"probe-{n}")))
        await wait_total(members, f"probe-{n}$", 1, 1.0)  # early probes may be lost
        serving = {m.node for m in members if any(t.startswith("probe-") for t in m.got)}
        if len(serving) == nodes:
            return
    raise AssertionError(f"group messages never reached every node: {[m.got for m in members]}")


def test_exactly_one_member_per_group_over_three_nodes(redis: RedisServer) -> None:
    async def main() -> None:
        async with cluster(redis.url, 3) as servers, AsyncExitStack() as stack:
            members = [await member(stack, s, i) for i, s in enumerate(servers) for _ in range(2)]
            plain = await member(stack, servers[2], 2)
            publisher = await member(stack, servers[0], 0)
            for m in members:
                await m.client.subscribe("jobs", group="g")
            await plain.client.subscribe("jobs")

            await probe_until_every_node_serves(publisher.client, members, 3)
            for m in [*members, plain]:
                m.got.clear()
            total = 600
            for i in range(total):
                await publisher.client.publish("jobs", Message(MessageV1(message=f"m{i}")))
            await wait_total(members, "m", total, 20)
            await wait_total([plain], "m", total, 20)
            # a fence through the same path: a late duplicate would land before it
            await publisher.client.publish("jobs", Message(MessageV1(message="end")))
            await wait_total(members, "end", 1, WAIT)
            flat = [t for m in members for t in m.got if t.startswith("m")]
            counts = Counter(flat)
            assert len(flat) == total and set(counts.values()) == {1}, "not exactly once"
            assert [t for t in plain.got if t.startswith("m")] == [f"m{i}" for i in range(total)]
            shares = [sum(t.startswith("m") for t in m.got) / total for m in members]
            per_node = [sum(shares[2 * i : 2 * i + 2]) for i in range(3)]
            print(f"shares per member {shares}; per node {per_node}")
            assert min(shares) > 0  # every member took part

    run(main(), timeout=60)


async def wait_blocked(url: str, n: int, *, exactly: bool = False) -> None:
    """Until ``n`` clients (at least, or ``exactly``) are blocked in XREADGROUP (bounded)."""
    admin = aioredis.Redis.from_url(url)
    try:
        async with asyncio.timeout(WAIT):
            while True:
                clients = await admin.client_list()
                blocked = sum(c.get("cmd") == "xreadgroup" and "b" in c["flags"] for c in clients)
                if blocked == n or (blocked > n and not exactly):
                    return  # each CLIENT LIST round trip yields to the loop: no sleep needed
    finally:
        await admin.aclose()


async def consumers_idle(url: str, stream: str, idle_ms: int) -> None:
    """Until every consumer of group "g" on ``stream`` has been idle ``idle_ms`` (Redis's own
    count, XINFO CONSUMERS), so the claim of stale entries applies (bounded by WAIT)."""
    admin = aioredis.Redis.from_url(url)
    try:
        async with asyncio.timeout(WAIT):
            while True:  # each round trip yields to the loop
                consumers = await admin.xinfo_consumers(stream, "g")
                if all(int(c["idle"]) >= idle_ms for c in consumers):
                    return
    finally:
        await admin.aclose()


def test_a_node_that_dies_before_writing_loses_nothing(redis: RedisServer) -> None:
    """Entries taken by a consumer that never acknowledges are claimed by a live node."""

    async def main() -> None:
        async with cluster(redis.url, 1, claim_idle=0.6) as servers, AsyncExitStack() as stack:
            live = await member(stack, servers[0], 0)
            await live.client.subscribe("jobs", group="g")
            publisher = await member(stack, servers[0], 0)
            await probe_until_every_node_serves(publisher.client, [live], 1)
            live.got.clear()
            # a second "node" joins the group, takes entries, and dies without XACK
            dead = aioredis.Redis.from_url(redis.url)
            stream = servers[0].backplane.stream_key("jobs")
            try:
                total = 100
                # blocked before the burst: Redis serves blocked consumers in turn
                grab = asyncio.ensure_future(
                    dead.xreadgroup("g", "deadnode", {stream: ">"}, count=10, block=5000)
                )
                await wait_blocked(redis.url, 2)
                for i in range(total):
                    await publisher.client.publish("jobs", Message(MessageV1(message=f"m{i}")))
                taken = await asyncio.wait_for(grab, WAIT)
            finally:
                await dead.aclose()
            n_taken = sum(len(entries) for _s, entries in taken)
            await wait_total([live], "m", total, 10)
            got = [t for t in live.got if t.startswith("m")]
            print(f"dead consumer took {n_taken} entries; live member got {len(got)}")
            assert sorted(got) == sorted(f"m{i}" for i in range(total))
            assert n_taken > 0  # the dead consumer really held some
            assert servers[0].backplane.status()["group_claimed"] >= n_taken

    run(main(), timeout=60)


def test_no_member_anywhere_the_backlog_is_skipped_and_counted(redis: RedisServer) -> None:
    async def main() -> None:
        async with cluster(redis.url, 2, claim_idle=0.5) as servers, AsyncExitStack() as stack:
            a = await member(stack, servers[0], 0)
            publisher = await member(stack, servers[1], 1)
            await a.client.subscribe("jobs", group="g")
            await probe_until_every_node_serves(publisher.client, [a], 1)
            await a.client.unsubscribe("jobs", group="g")
            # wait until node 0 stopped consuming, then publish with no member anywhere
            await poll_until(lambda: not servers[0].groups.members("jobs", "g"), WAIT)
            # and its blocking read is gone from Redis too (a read still blocked there
            # would take the next entry, to be claimed later instead of skipped)
            await wait_blocked(redis.url, 0, exactly=True)

            for i in range(5):
                await publisher.client.publish("jobs", Message(MessageV1(message=f"lost{i}")))
            a.got.clear()
            drops: list[int] = []
            servers[0].backplane.on_drop = drops.append
            await consumers_idle(redis.url, servers[0].backplane.stream_key("jobs"), 600)
            await a.client.subscribe("jobs", group="g")
            await probe_until_every_node_serves(publisher.client, [a], 1)
            assert not [t for t in a.got if t.startswith("lost")]
            skipped = servers[0].backplane.status()["group_skipped"]
            assert skipped >= 5 and sum(drops) == skipped  # the 5, and any probe never read

    run(main(), timeout=60)
