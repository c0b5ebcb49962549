"""The Redis Cluster backplane: sharded pub/sub (``SSUBSCRIBE``/``SPUBLISH``, Redis 7).

Same design and guarantees as :class:`~goomerang_io.backplane.redis.RedisBackplane`
(read its docstring): one session per successful connection, the broadcast
channel and each held topic's channel subscribed, envelopes in protobuf, own
echoes dropped, the outbox bounded in bytes, a fault tears the session down
and the node reconnects with capped backoff forever, re-subscribing every
topic; ``healthy()`` and ``backplane_up`` follow it. What changes:

* Channels are *shard channels*: ``SPUBLISH`` goes to the master that owns
  the channel's hash slot and only that shard relays it, so topics spread
  over the shards instead of every message crossing one Redis (plain
  ``PUBLISH`` in a cluster is relayed to every node of the cluster). A node
  holds one pub/sub connection per shard that owns a channel it holds
  (redis-py's ``ClusterPubSub``).
* Health: every ``health_interval`` (default 1 s) the node PINGs every master;
  a master that does not answer within ``connect_timeout`` (a killed or
  paused shard) ends the session, as a lost connection does. Without replicas
  a cluster with a dead master stops serving (``cluster_state:fail``) until
  it comes back; the node keeps reconnecting meanwhile and resumes delivery
  once the cluster is whole again (at most once across that window).
* Queue groups use the same Redis Streams consumer groups: each stream key
  lives on the shard of its hash slot.

``url``: ``rediscluster://host:port[,host:port...]`` (or ``redis://``), the
startup nodes; the rest of the cluster is discovered. Several startup nodes
let a node reconnect while one of them is down. Needs redis-py >= 8.0
(async cluster pub/sub) and Redis >= 7.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster

from .base import BackplaneUnavailable, describe
from .redis import RedisBackplane
from .redis_session import FAULTS, Session, redact_url

__all__ = ["RedisClusterBackplane", "startup_nodes"]


class _ClusterSession(Session):
    """A session with one reader task per shard connection.

    ``ClusterPubSub`` opens a connection per shard on SSUBSCRIBE; a shard's
    reader starts once that call returned (reading a shard connection that is
    still being set up fails), woken by ``shards_changed``.
    """

    def __init__(self, client: Any, pubsub: Any) -> None:
        super().__init__(client, pubsub)
        self.shards_changed = asyncio.Event()


def startup_nodes(url: str) -> list[tuple[str, int]]:
    """``[(host, port), ...]`` from ``rediscluster://h:p[,h:p...]`` or ``redis://h:p``."""
    parts = urlsplit(url)
    nodes = []
    for item in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"not a cluster address: {item!r} in {redact_url(url)!r}")
        nodes.append((host.strip("[]"), int(port)))
    return nodes


class RedisClusterBackplane(RedisBackplane):
    """Broadcast, publish and queue groups across nodes through Redis Cluster sharded pub/sub."""

    backend = "redis-cluster"
    publish_command = "spublish"

    def __init__(self, url: str, **kwargs: Any) -> None:
        if url.startswith("rediscluster://"):
            url = "redis://" + url[len("rediscluster://") :]
        self.startup = startup_nodes(url)
        first_host, first_port = self.startup[0]
        password = urlsplit(url).password
        self._password = password
        super().__init__(f"redis://{first_host}:{first_port}/0", **kwargs)
        self.url = url

    def _new_client(self) -> Any:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self.startup],
            password=self._password,
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.connect_timeout,
            require_full_coverage=True,
        )

    def _new_session(self) -> Session:
        client = self._new_client()
        return _ClusterSession(client, client.pubsub())

    async def _subscribe_all(self, session: Session, channels: list[bytes]) -> None:
        """SSUBSCRIBE every channel (one connection per owning shard); wait for each answer."""
        await session.client.initialize()
        await self._ping_masters(session)
        loop = asyncio.get_running_loop()
        waits = []
        for channel in channels:
            fut: asyncio.Future[None] = loop.create_future()
            session.acks.setdefault(("ssubscribe", channel), deque()).append(fut)
            waits.append(fut)
        assert isinstance(session, _ClusterSession)
        await session.pubsub.ssubscribe(*channels)
        session.listener = asyncio.ensure_future(self._listen(session))
        confirmed = asyncio.gather(*waits)
        await asyncio.wait((confirmed, session.listener), return_when=asyncio.FIRST_COMPLETED)
        if session.listener.done():
            confirmed.cancel()
            session.listener.result()  # raises the fault
            raise BackplaneUnavailable("Redis Cluster listener ended during connect")

    async def _confirmed(self, session: Session, what: str, topic: str) -> None:
        """SSUBSCRIBE/SUNSUBSCRIBE ``topic``'s shard channel; wait for the shard's answer."""
        channel = self.topic_channel(topic)
        kind = "s" + what
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        session.acks.setdefault((kind, channel), deque()).append(fut)
        assert isinstance(session, _ClusterSession)
        try:
            if what == "subscribe":
                await session.pubsub.ssubscribe(channel)
            else:
                await session.pubsub.sunsubscribe(channel)
            session.shards_changed.set()
            await asyncio.wait_for(asyncio.shield(fut), self.connect_timeout)
        except asyncio.CancelledError:
            if not fut.cancelled():
                raise
        except FAULTS as exc:
            self._report(
                BackplaneUnavailable(f"Redis Cluster {kind} {topic!r} failed: {describe(exc)}")
            )

    async def _ping_masters(self, session: Session) -> None:
        client = session.client
        await asyncio.wait_for(
            client.ping(target_nodes=RedisCluster.PRIMARIES), self.connect_timeout
        )

    async def _listen(self, session: Session) -> None:
        """Health PINGs, and one reader per shard connection (started as shards appear)."""
        assert isinstance(session, _ClusterSession)
        pubsub = session.pubsub
        loop = asyncio.get_running_loop()
        readers: dict[str, asyncio.Task[None]] = {}
        next_health = loop.time() + self.health_interval
        try:
            while True:
                for name, shard in list(pubsub.node_pubsub_mapping.items()):
                    # a shard's connection is set once its SSUBSCRIBE went out
                    if name not in readers and shard.connection is not None:
                        readers[name] = asyncio.ensure_future(self._read_shard(session, name))
                for name, task in list(readers.items()):
                    if task.done():
                        task.result()  # a fault ends the session
                        del readers[name]  # the shard holds no channel of ours any more
                if loop.time() >= next_health:
                    # a dead or hung master: the ping fails or times out, the session ends
                    await self._ping_masters(session)
                    next_health = loop.time() + self.health_interval
                    self.health_pongs += 1
                    if self.on_health_pong is not None:
                        self.on_health_pong()
                session.shards_changed.clear()
                waits: list[asyncio.Future[Any]] = [
                    asyncio.ensure_future(session.shards_changed.wait()),
                    *readers.values(),
                ]
                await asyncio.wait(
                    waits,
                    timeout=max(0.0, next_health - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waits[0].cancel()
        finally:
            for task in readers.values():
                task.cancel()

    async def _read_shard(self, session: Session, name: str) -> None:
        pubsub = session.pubsub
        client: Any = session.client
        node = client.get_node(node_name=name)
        while name in pubsub.node_pubsub_mapping:
            msg = await pubsub.get_sharded_message(
                ignore_subscribe_messages=False, timeout=self.health_interval, target_node=node
            )
            if msg is None:
                continue
            mtype = msg["type"]
            if mtype == "smessage":
                self._on_data(msg["data"])
            elif mtype in ("ssubscribe", "sunsubscribe"):
                waiters = session.acks.get((mtype, msg["channel"]))
                if waiters:
                    fut = waiters.popleft()
                    if not fut.done():
                        fut.set_result(None)
