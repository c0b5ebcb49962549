"""The Redis Cluster backplane (sharded pub/sub) against a real Redis 7 cluster of 3 masters.

Exactly-once delivery across 3 goomerang nodes with topics hashed to every
shard, queue groups over the cluster, and a shard master killed and restarted
from its nodes.conf: without replicas the whole cluster stops meanwhile, so
exactly-once is counted outside that window, and delivery must resume.
``scripts/ensure-redis7.sh`` (``make test``) installs Redis 7 when missing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from redis.crc import key_slot
from redis_cluster import RedisCluster, redis7_missing
from util import poll_until, run

from goomerang_io import Client, Server
from goomerang_io.backplane import backplane_from_url
from goomerang_io.backplane.redis_cluster import RedisClusterBackplane, startup_nodes
from goomerang_proto import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

WAIT = 5.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    why = redis7_missing()
    if why is not None:
        pytest.fail(why)  # never skipped: make test installs Redis 7 (scripts/ensure-redis7.sh)
    with RedisCluster() as c:
        yield c


def topics_on_every_shard(c: RedisCluster, prefix: str = "goomerang") -> list[str]:
    """One topic whose channel hashes to each master."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < len(c.ports):
        topic = f"t{i}"
        owner = c.slot_owner(key_slot(f"{prefix}:topic:{topic}".encode()))
        found.setdefault(owner, topic)
        i += 1
    return [found[k] for k in sorted(found)]


class Peer:
    def __init__(self, client: Client, node: int) -> None:
        self.client = client
        self.node = node
        self.got: list[str] = []

    def count(self, prefix: str) -> int:
        return sum(t.startswith(prefix) for t in self.got)


@asynccontextmanager
async def nodes(c: RedisCluster, n: int, **bp: object) -> AsyncIterator[list[Server]]:
    seeds = "rediscluster://" + ",".join(c.addresses)
    async with AsyncExitStack() as stack:
        servers = []
        for i in range(n):
            backplane = RedisClusterBackplane(
                seeds, node_id=f"node{i}", reconnect_backoff=(0.05, 0.3), **bp
            )
            server = Server("127.0.0.1:0", backplane=backplane)
            server.register_message(MessageV1)
            await server.start()
            await asyncio.wait_for(backplane.wait_connected(), WAIT)
            stack.push_async_callback(server.shutdown)
            servers.append(server)
        yield servers


async def peer(stack: AsyncExitStack, server: Server, node: int) -> Peer:
    client = Client(server.addr, heartbeat_interval=None)
    p = Peer(client, node)
    client.handle(MessageV1, lambda _s, m: p.got.append(m.payload.message))
    await client.connect()
    stack.push_async_callback(client.close)
    return p


async def until(pred: Callable[[], bool], timeout: float) -> bool:
    """Whether ``pred()`` came true within ``timeout`` s (util.poll_until, as a bool)."""
    try:
        await poll_until(pred, timeout)
    except AssertionError:
        return False
    return True


async def probe(publisher: Client, topic: str, receivers: list[Peer], tag: str) -> None:
    """Publish probes until every receiver got one (subscribe has no acknowledgement)."""
    for n in range(200):
        text = f"{tag}-{n}"
        await publisher.publish(topic, Message(MessageV1(message=text)))
        if await until(lambda t=text: all(t in r.got for r in receivers), 0.5):
            return
    raise AssertionError(f"probes on {topic!r} never reached every receiver")


def test_url_forms() -> None:
    assert startup_nodes("rediscluster://a:1,b:2") == [("a", 1), ("b", 2)]
    assert startup_nodes("redis://127.0.0.1:7000/0") == [("127.0.0.1", 7000)]
    with pytest.raises(ValueError):
        startup_nodes("rediscluster://nohost")
    bp = backplane_from_url("rediscluster://127.0.0.1:7000,127.0.0.1:7001")
    assert isinstance(bp, RedisClusterBackplane) and bp.startup[1] == ("127.0.0.1", 7001)


@pytest.mark.timeout(60)
def test_exactly_once_over_three_nodes_and_every_shard(cluster: RedisCluster) -> None:
    topics = topics_on_every_shard(cluster)

    async def main() -> None:
        async with nodes(cluster, 3) as servers, AsyncExitStack() as stack:
            subs = {t: [await peer(stack, s, i) for i, s in enumerate(servers)] for t in topics}
            members = [await peer(stack, s, i) for i, s in enumerate(servers)]
            pubs = [await peer(stack, s, i) for i, s in enumerate(servers)]
            for t in topics:
                for p in subs[t]:
                    await p.client.subscribe(t)
            for m in members:
                await m.client.subscribe(topics[0], group="g")
            for t in topics:
                await probe(pubs[0].client, t, subs[t], f"probe-{t}")
            for p in [*members, *(p for ps in subs.values() for p in ps)]:
                p.got.clear()
            per = 100
            for i in range(per):
                for t in topics:
                    pub = pubs[i % 3]
                    await pub.client.publish(t, Message(MessageV1(message=f"{t}:m{i}")))
            for t in topics:
                want = [f"{t}:m{i}" for i in range(per)]
                ok = await until(
                    lambda ps=subs[t], w=want: all(len(p.got) >= len(w) for p in ps), 10
                )
                assert ok, [len(p.got) for p in subs[t]]
                for p in subs[t]:
                    assert sorted(p.got) == sorted(want)  # each exactly once
            group = [t for m in members for t in m.got if t.startswith(f"{topics[0]}:m")]
            assert await until(lambda: sum(m.count(f"{topics[0]}:m") for m in members) >= per, 10)
            group = [t for m in members for t in m.got if t.startswith(f"{topics[0]}:m")]
            assert len(group) == per and set(Counter(group).values()) == {1}
            shards = {cluster.slot_owner(key_slot(f"goomerang:topic:{t}".encode())) for t in topics}
            assert shards == {0, 1, 2}
            print(
                "cluster: per-topic",
                per,
                "x",
                len(topics),
                "topics, 3 subscribers each;",
                "group shares",
                [m.count(f"{topics[0]}:m") / per for m in members],
            )

    run(main(), timeout=50)


@pytest.mark.timeout(100)
def test_a_killed_shard_master_comes_back_and_delivery_resumes(cluster: RedisCluster) -> None:
    topics = topics_on_every_shard(cluster)

    async def main() -> None:
        async with nodes(cluster, 2) as servers, AsyncExitStack() as stack:
            subs = {t: [await peer(stack, servers[1], 1)] for t in topics}
            pub = await peer(stack, servers[0], 0)
            for t in topics:
                await subs[t][0].client.subscribe(t)
            for t in topics:
                await probe(pub.client, t, subs[t], f"probe-{t}")
            victim = cluster.slot_owner(key_slot(f"goomerang:topic:{topics[1]}".encode()))
            health: list[bool] = []
            servers[0].backplane.on_health_change = health.append
            cluster.kill(victim)
            # the health PING notices the dead master: the session ends
            assert await until(lambda: not servers[0].backplane.healthy(), 15)
            # meanwhile publishing goes on without error (dropped for the other node, counted)
            for i in range(5):
                await pub.client.publish(topics[0], Message(MessageV1(message=f"down-{i}")))
            cluster.restart(victim)
            for s in servers:
                await asyncio.wait_for(s.backplane.wait_connected(), 20)
            assert servers[0].backplane.status()["reconnects"] >= 1
            # outside the window: exactly once again, on every shard
            for t in topics:
                await probe(pub.client, t, subs[t], f"again-{t}")
            for ps in subs.values():
                for p in ps:
                    p.got.clear()
            for i in range(30):
                for t in topics:
                    await pub.client.publish(t, Message(MessageV1(message=f"{t}:r{i}")))
            for t in topics:
                want = sorted(f"{t}:r{i}" for i in range(30))
                assert await until(lambda p=subs[t][0], t=t: p.count(f"{t}:r") >= 30, 25)
                assert sorted(x for x in subs[t][0].got if x.startswith(f"{t}:r")) == want
            assert health[:2] == [False, True]

    run(main(), timeout=85)
