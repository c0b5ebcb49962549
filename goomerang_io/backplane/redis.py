"""The Redis backplane: several machines (or independent servers) share one Redis.

Theory of operation. Each node owns one Redis pub/sub connection and one
command connection, both made by a fresh ``redis.asyncio`` client per
*session* (one session per successful connection; redis-py's own retries
are off, so every fault surfaces here and is handled in one place).

Channels: ``<prefix>:broadcast`` (every node subscribes) and
``<prefix>:topic:<topic>`` (a node subscribes only while its own clients
hold ``topic``). Each message is one ``goomerang.backplane.Envelope``
(protobuf, never pickle) carrying the sender's node id; a node delivers to
its own clients first, publishes once, and drops its own echo, so each
other node delivers each message exactly once while the connection holds.

Sending never waits on Redis: ``broadcast``/``publish`` append to an
outbox that a sender task flushes (one PUBLISH, or a non-transactional
pipeline for a batch), preserving order, one batch in flight at a time.

Bounds. The outbox holds at most ``max_outbox_bytes`` (default 4 MiB) and
``max_outbox`` messages; past either, new messages are dropped for the other
nodes (local delivery goes on), counted (``status()["dropped"]``,
``["dropped_bytes"]``, ``on_drop``: the server's metric
``goomerang_server_backplane_dropped_total``) and reported once per episode.
A batch carries at most ``max_batch_bytes`` (default 1 MiB). So a backlog
flushed after a stall puts at most 4 MiB at once into each receiving node's
Redis output buffer: half of Redis's default ``client-output-buffer-limit
pubsub 32mb 8mb 60`` soft limit and an eighth of its hard limit, so Redis does
not disconnect the receivers' subscriptions because of our backlog.

Queue groups (``routes_groups``): exactly one member per group over all
nodes, with Redis Streams consumer groups. A topic that has queue groups
somewhere has a stream ``<prefix>:stream:<topic>`` (``XADD`` with
``MAXLEN ~ group_stream_maxlen``, default 10,000: the oldest entries are
trimmed); each goomerang queue group is a Redis consumer group of that
stream and each node with local members of it is one consumer (its node id)
reading with ``XREADGROUP``: Redis hands each entry to one consumer, and the
node writes it to one local member (round robin). The node ``XACK``s an entry
after handing it to the member's connection, and every consumer runs
``XAUTOCLAIM`` for entries left pending longer than ``claim_idle`` (default
5 s) by a consumer that died: a group message whose node died before writing
it is delivered by another node after ``claim_idle`` (**at least once**; a
message written to a member's socket just before its node died may be
written again). Topics with groups are announced in the set
``<prefix>:grouped`` and on the broadcast channel (a JOIN envelope), so a
publisher ``XADD``s only for those (at most ``max_group_topics`` of them,
default 10,000). When no node has a member of a group, its entries wait in
the stream; the first node that joins such a group again skips that backlog
(``XGROUP SETID $``) and counts it as dropped (``group_skipped``, ``on_drop``).

Stalls. A pub/sub connection silent for ``health_interval`` (default 1 s)
gets a PING; no answer within another ``health_interval`` means Redis hangs
(``CLIENT PAUSE``, a stopped process, a dead network path without a reset):
the session is torn down and reconnected, so a stall is noticed within
about two intervals (2 s by default). Commands time out after
``connect_timeout`` (default 2 s).

Faults. When Redis goes away: the error hook gets one report per outage
(plus one per failed reconnect attempt), ``healthy()`` turns False,
messages sent meanwhile are dropped and counted (at most once across
nodes: nothing is replayed), and the node reconnects with capped
exponential backoff forever, then re-subscribes the broadcast channel and
every topic it holds. ``status()`` tells it all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from goomerang_proto.pb import goomerang_backplane_pb2 as pb

from .base import (
    Backplane,
    BackplaneMessage,
    BackplaneProtocolError,
    BackplaneUnavailable,
    DeliverCallback,
    ErrorCallback,
    decode_envelope,
    describe,
    encode_envelope,
    new_node_id,
    next_backoff,
)

__all__ = ["RedisBackplane", "redact_url"]

_DELIVER = pb.Envelope.DELIVER
_JOIN = pb.Envelope.JOIN
_PUBLISH = 0
_XADD = 1
_FAULTS = (RedisError, OSError, asyncio.TimeoutError, EOFError)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs and status)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class _Session:
    """One connection to Redis: a client, its pub/sub, and the tasks using them."""

    def __init__(self, client: aioredis.Redis, pubsub: Any) -> None:
        self.client = client
        self.pubsub = pubsub
        self.connected = False
        self.acks: dict[tuple[str, bytes], deque[asyncio.Future[None]]] = {}
        self.pong: asyncio.Future[None] | None = None
        self.sender: asyncio.Task[None] | None = None
        self.listener: asyncio.Task[None] | None = None
        self.consumers: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def close(self) -> None:
        for task in (self.sender, self.listener, *self.consumers.values()):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, *_FAULTS):
                    await task
        if self.pong is not None and not self.pong.done():
            self.pong.cancel()
        for waiters in self.acks.values():
            for fut in waiters:
                if not fut.done():
                    fut.cancel()
        self.acks.clear()
        with contextlib.suppress(*_FAULTS, RuntimeError):
            await self.pubsub.aclose()
        with contextlib.suppress(*_FAULTS, RuntimeError):
            await self.client.aclose()


class RedisBackplane(Backplane):
    """Broadcast and publish across nodes through Redis pub/sub (redis-py asyncio)."""

    backend = "redis"
    routes_groups = True
    #: The publish command (``SPUBLISH`` on Redis Cluster's sharded pub/sub).
    publish_command = "publish"

    def __init__(
        self,
        url: str,
        *,
        node_id: str | None = None,
        channel_prefix: str = "goomerang",
        reconnect_backoff: tuple[float, float] = (0.1, 5.0),
        connect_timeout: float = 2.0,
        health_interval: float = 1.0,
        max_outbox: int = 100_000,
        max_outbox_bytes: int = 4 * 1024 * 1024,
        max_batch_bytes: int = 1024 * 1024,
        group_stream_maxlen: int = 10_000,
        claim_idle: float = 5.0,
        max_group_topics: int = 10_000,
    ) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"not a Redis URL: {redact_url(url)!r} (want redis://host:port/db)")
        self.url = url
        self.node_id = node_id or new_node_id()
        self.channel_prefix = channel_prefix
        self.broadcast_channel = f"{channel_prefix}:broadcast".encode()
        self.reconnect_backoff = reconnect_backoff
        self.connect_timeout = connect_timeout
        self.health_interval = health_interval
        self.max_outbox = max_outbox
        self.max_outbox_bytes = max_outbox_bytes
        self.max_batch_bytes = max_batch_bytes
        self._outbox_bytes = 0
        self._overload_reported = False
        self.group_stream_maxlen = group_stream_maxlen
        #: Entries one XREADGROUP takes at most. Small: Redis hands entries to
        #: the consumer that asks first, so a big batch lets one node take a
        #: burst; with a few per read, the nodes' consumers take turns.
        self.group_read_count = 16
        self.claim_idle = claim_idle
        self.max_group_topics = max_group_topics
        self.grouped_key = f"{channel_prefix}:grouped".encode()
        self._members: dict[tuple[str, str], int] = {}  # local queue-group members
        self._grouped: set[str] = set()  # topics with queue groups on some node
        self.group_deliveries = 0  # stream entries handed to a local member
        self.group_claimed = 0  # stale entries of a dead consumer claimed here
        self.group_skipped = 0  # entries left with no member, skipped on a join
        self._deliver: DeliverCallback | None = None
        self._on_error: ErrorCallback | None = None
        self._topics: set[str] = set()
        self._session: _Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._first_attempt: asyncio.Event | None = None
        self._outbox: deque[tuple[bytes, bytes, int]] = deque()
        self._outbox_ready: asyncio.Event | None = None
        self._connected_event = asyncio.Event()
        self._idle = asyncio.Event()  # the sender has nothing queued or in flight
        self._closing = False
        self._outage_reported = False
        self.reconnects = 0
        self.sent = 0
        self.received = 0
        self.health_pongs = 0  # health pings Redis answered (the connect ping not counted)
        # Called after each answered health ping (observability, tests).
        self.on_health_pong: Callable[[], None] | None = None
        self.last_error: str | None = None

    def stream_key(self, topic: str) -> bytes:
        """The Redis stream of ``topic``'s queue groups."""
        return f"{self.channel_prefix}:stream:{topic}".encode()

    def topic_channel(self, topic: str) -> bytes:
        """The Redis channel of ``topic``."""
        return f"{self.channel_prefix}:topic:{topic}".encode()

    # Backplane API -----------------------------------------------------------

    async def start(self, deliver: DeliverCallback, on_error: ErrorCallback) -> None:
        """Make the first connection attempt, then keep the connection up in the background.

        Never raises for an unreachable Redis: the failure goes to
        ``on_error`` and the node runs with local delivery only until
        Redis answers (``healthy()`` says which).
        """
        if self._task is not None:
            raise RuntimeError("RedisBackplane.start() called twice")
        self._deliver = deliver
        self._on_error = on_error
        self._first_attempt = asyncio.Event()
        self._outbox_ready = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"goomerang-redis-backplane-{self.node_id}"
        )
        await self._first_attempt.wait()

    async def broadcast(self, kind: str, frame: bytes) -> None:
        """Queue a broadcast for every other node (never waits)."""
        self.broadcast_nowait(kind, frame)

    async def publish(self, topic: str, kind: str, frame: bytes) -> None:
        """Queue a publish for the nodes holding ``topic`` (never waits)."""
        self.publish_nowait(topic, kind, frame)

    def broadcast_nowait(self, kind: str, frame: bytes) -> None:
        """Queue a broadcast for every other node; dropped past the outbox bounds."""
        self._enqueue(
            self.broadcast_channel, encode_envelope(_DELIVER, self.node_id, "", kind, frame)
        )

    def publish_nowait(self, topic: str, kind: str, frame: bytes) -> None:
        """Queue a publish for the nodes holding ``topic``; raises ValueError for ``""``."""
        if not topic:
            raise ValueError("publish needs a non-empty topic (an empty topic means broadcast)")
        data = encode_envelope(_DELIVER, self.node_id, topic, kind, frame)
        self._enqueue(self.topic_channel(topic), data)
        if topic in self._grouped:
            self._enqueue(self.stream_key(topic), data, _XADD)

    async def join(self, topic: str, group: str) -> None:
        """One more local member of ``group``: the first one makes this node a consumer."""
        key = (topic, group)
        count = self._members.get(key, 0)
        self._members[key] = count + 1
        if count:
            return
        self._note_grouped(topic)
        session = self._session
        if session is not None and session.connected:
            await self._start_consumer(session, topic, group)

    async def leave(self, topic: str, group: str) -> None:
        """One local member of ``group`` left: with the last one, stop consuming.

        Entries this node read but did not acknowledge are claimed by another
        consumer after ``claim_idle``.
        """
        key = (topic, group)
        count = self._members.get(key, 0)
        if count > 1:
            self._members[key] = count - 1
            return
        self._members.pop(key, None)
        session = self._session
        task = session.consumers.pop(key, None) if session is not None else None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_FAULTS):
                await task

    def _note_grouped(self, topic: str) -> None:
        if topic in self._grouped:
            return
        if len(self._grouped) >= self.max_group_topics:
            self._report(
                BackplaneUnavailable(
                    f"more than max_group_topics={self.max_group_topics} topics with queue "
                    f"groups: {topic!r} is served by one node only"
                )
            )
            return
        self._grouped.add(topic)

    async def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic``'s channel; returns once Redis confirmed it (or it failed)."""
        if topic in self._topics:
            return
        self._topics.add(topic)
        session = self._session
        if session is None or not session.connected:
            return  # the session being opened (or the next one) subscribes every held topic
        await self._confirmed(session, "subscribe", topic)

    async def unsubscribe(self, topic: str) -> None:
        """Unsubscribe from ``topic``'s channel (messages already in flight are ignored)."""
        if topic not in self._topics:
            return
        self._topics.discard(topic)
        session = self._session
        if session is None or not session.connected:
            return
        await self._confirmed(session, "unsubscribe", topic)

    async def wait_connected(self) -> None:
        """Return once subscribed on a live Redis connection."""
        await self._connected_event.wait()

    async def _confirmed(self, session: _Session, what: str, topic: str) -> None:
        """Send SUBSCRIBE/UNSUBSCRIBE for ``topic`` and wait for Redis's confirmation."""
        channel = self.topic_channel(topic)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        session.acks.setdefault((what, channel), deque()).append(fut)
        try:
            if what == "subscribe":
                await session.pubsub.subscribe(channel)
            else:
                await session.pubsub.unsubscribe(channel)
            await asyncio.wait_for(asyncio.shield(fut), self.connect_timeout)
        except asyncio.CancelledError:
            if not fut.cancelled():
                raise  # our caller was cancelled
            # the session ended: the next one subscribes the held topics
        except _FAULTS as exc:
            self._report(BackplaneUnavailable(f"Redis {what} {topic!r} failed: {describe(exc)}"))

    async def close(self) -> None:
        """Send what is queued (bounded by ``connect_timeout``), stop, disconnect. Idempotent."""
        if self.healthy() and self._outbox:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.connect_timeout)
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._outbox.clear()
        self._outbox_bytes = 0

    def healthy(self) -> bool:
        """True while subscribed on a live Redis connection."""
        return self._session is not None and self._session.connected

    def status(self) -> dict[str, object]:
        """Connection state and counters (for a status call or a metric)."""
        return {
            "backend": self.backend,
            "node_id": self.node_id,
            "url": redact_url(self.url),
            "connected": self.healthy(),
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "topics": len(self._topics),
            "sent": self.sent,
            "received": self.received,
            "dropped": self.dropped,
            "dropped_bytes": self.dropped_bytes,
            "queued": len(self._outbox),
            "queued_bytes": self._outbox_bytes,
            "group_topics": len(self._grouped),
            "group_deliveries": self.group_deliveries,
            "group_claimed": self.group_claimed,
            "group_skipped": self.group_skipped,
            "health_pongs": self.health_pongs,
        }

    # internals -------------------------------------------------------------

    def _report(self, exc: Exception) -> None:
        self.last_error = str(exc)
        if self._on_error is not None:
            try:
                self._on_error(exc)
            except Exception:  # an error hook must not kill the backplane
                pass

    def _enqueue(self, channel: bytes, data: bytes, op: int = _PUBLISH) -> None:
        if not self.healthy():
            self._count_drop(1, len(data))
            if not self._outage_reported:
                self._outage_reported = True
                self._report(
                    BackplaneUnavailable(
                        f"Redis backplane {redact_url(self.url)} is down: message not sent to "
                        "other nodes (local delivery continues; further drops are counted)"
                    )
                )
            return
        size = len(data)
        if (
            len(self._outbox) >= self.max_outbox
            or self._outbox_bytes + size > self.max_outbox_bytes
        ):
            self._count_drop(1, size)
            if not self._overload_reported:
                self._overload_reported = True
                self._report(
                    BackplaneUnavailable(
                        f"Redis backplane {redact_url(self.url)} is not keeping up: "
                        f"{self._outbox_bytes} bytes queued (max_outbox_bytes="
                        f"{self.max_outbox_bytes}); message not sent to other nodes "
                        "(further drops are counted)"
                    )
                )
            return
        if self._overload_reported and self._outbox_bytes < self.max_outbox_bytes // 2:
            self._overload_reported = False
        self._outbox.append((channel, data, op))
        self._outbox_bytes += size
        self._idle.clear()
        assert self._outbox_ready is not None
        self._outbox_ready.set()

    def _new_client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.connect_timeout,
            health_check_interval=0,
        )

    def _new_session(self) -> _Session:
        client = self._new_client()
        return _Session(client, client.pubsub())

    async def _run(self) -> None:
        base, cap = self.reconnect_backoff
        delay = 0.0
        first = True
        while not self._closing:
            session = self._new_session()
            self._session = session
            was_connected = False
            try:
                await asyncio.wait_for(self._open(session), self.connect_timeout)
                was_connected = True
                if not first:
                    self.reconnects += 1
                first = False
                delay = 0.0
                self._outage_reported = False
                assert self._first_attempt is not None and session.listener is not None
                self._first_attempt.set()
                await session.listener  # returns only by raising
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closing:
                    return
                what = "lost" if was_connected else "cannot reach"
                self._report(
                    BackplaneUnavailable(
                        f"{what} Redis backplane {redact_url(self.url)}: {describe(exc)}; "
                        "reconnecting"
                    )
                )
            finally:
                session.connected = False
                self._connected_event.clear()
                if not self._closing:
                    self._health_changed(False)
                if self._session is session:
                    self._session = None
                self._count_drop(len(self._outbox), self._outbox_bytes)
                self._outbox.clear()
                self._outbox_bytes = 0
                await session.close()
            first = False
            assert self._first_attempt is not None
            self._first_attempt.set()
            delay = next_backoff(delay, base, cap)
            await asyncio.sleep(delay)

    async def _open(self, session: _Session) -> None:
        """Ping, subscribe to every channel, wait until Redis confirmed them all."""
        held = set(self._topics)
        channels = [self.broadcast_channel, *(self.topic_channel(t) for t in sorted(held))]
        await self._subscribe_all(session, channels)
        # queue groups: learn the grouped topics, consume the groups held here
        grouped = await session.client.smembers(self.grouped_key)
        for raw in sorted(grouped)[: self.max_group_topics]:
            name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            self._note_grouped(name)
        for topic, group in sorted(self._members):
            await self._start_consumer(session, topic, group)
        session.connected = True
        self._connected_event.set()
        self._health_changed(True)
        missing = self._topics - held  # subscribed while this session was opening
        if missing:
            await session.pubsub.subscribe(*(self.topic_channel(t) for t in sorted(missing)))
        gone = held - self._topics  # unsubscribed while this session was opening
        if gone:
            await session.pubsub.unsubscribe(*(self.topic_channel(t) for t in sorted(gone)))
        session.sender = asyncio.ensure_future(self._send_loop(session))

    async def _subscribe_all(self, session: _Session, channels: list[bytes]) -> None:
        """Subscribe ``channels`` and start the listener; return once Redis confirmed them."""
        await session.client.ping()
        loop = asyncio.get_running_loop()
        session.pong = loop.create_future()
        await session.pubsub.subscribe(*channels)
        await session.pubsub.ping()
        session.listener = asyncio.ensure_future(self._listen(session))
        # every SUBSCRIBE confirmation precedes the PONG; the listener fails if Redis does
        await asyncio.wait((session.pong, session.listener), return_when=asyncio.FIRST_COMPLETED)
        if session.listener.done():
            session.listener.result()  # raises the fault
            raise BackplaneUnavailable("Redis pub/sub listener ended during connect")

    # queue groups over Redis Streams ------------------------------------------

    async def _start_consumer(self, session: _Session, topic: str, group: str) -> None:
        """Make this node a consumer of ``group`` on ``topic``'s stream and announce it."""
        key = (topic, group)
        if key in session.consumers:
            return
        client = session.client
        stream = self.stream_key(topic)
        try:
            await client.xgroup_create(stream, group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            await self._skip_orphaned_backlog(session, stream, group)
        # register this consumer at once (XREADGROUP would create it only when served)
        await client.xgroup_createconsumer(stream, group, self.node_id)
        await client.sadd(self.grouped_key, topic)
        announce = pb.Envelope(op=_JOIN, origin=self.node_id, topic=topic, group=group)
        publish = getattr(client, self.publish_command)
        await publish(self.broadcast_channel, announce.SerializeToString())
        session.consumers[key] = asyncio.ensure_future(self._consume(session, topic, group))

    async def _skip_orphaned_backlog(self, session: _Session, stream: bytes, group: str) -> None:
        """With no live consumer in ``group``, drop (and count) what waited for one."""
        client = session.client
        idle_ms = self.claim_idle * 1000
        consumers = await client.xinfo_consumers(stream, group)
        if any(c["name"] != self.node_id.encode() and c["idle"] < idle_ms for c in consumers):
            return
        groups = await client.xinfo_groups(stream)
        last = next((g["last-delivered-id"] for g in groups if g["name"] == group.encode()), None)
        if last is None:
            return
        waiting = await client.xrange(stream, min=b"(" + last, count=self.group_stream_maxlen)
        await client.xgroup_setid(stream, group, id="$")
        if waiting:
            self.group_skipped += len(waiting)
            self._count_drop(len(waiting))

    async def _consume(self, session: _Session, topic: str, group: str) -> None:
        """Read ``group``'s entries (and claim a dead consumer's) until cancelled.

        A client of its own: its blocking reads never wait behind (or hold up)
        the sender's publishes.
        """
        client = self._new_client()
        try:
            await self._consume_with(session, client, topic, group)
        finally:
            with contextlib.suppress(*_FAULTS, RuntimeError):
                await client.aclose()

    async def _consume_with(
        self, session: _Session, client: aioredis.Redis, topic: str, group: str
    ) -> None:
        stream = self.stream_key(topic)
        loop = asyncio.get_running_loop()
        block_ms = int(min(1.0, self.claim_idle / 2) * 1000)
        next_claim = 0.0
        while True:
            try:
                if loop.time() >= next_claim:
                    next_claim = loop.time() + self.claim_idle / 2
                    claimed = await client.xautoclaim(
                        stream,
                        group,
                        self.node_id,
                        min_idle_time=int(self.claim_idle * 1000),
                        start_id="0-0",
                        count=256,
                    )
                    entries = claimed[1] if len(claimed) > 1 else []
                    self.group_claimed += len(entries)
                    await self._deliver_entries(client, stream, group, entries)
                reply: Any = await client.xreadgroup(
                    group, self.node_id, {stream: ">"}, count=self.group_read_count, block=block_ms
                )
                for _name, entries in reply or ():
                    await self._deliver_entries(client, stream, group, entries)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # the stream or group was deleted (e.g. FLUSHDB): create it again
                await client.xgroup_create(stream, group, id="$", mkstream=True)
            except _FAULTS as exc:
                if not session.connected:
                    return  # the session ends; the next one restarts the consumers
                self._report(
                    BackplaneUnavailable(f"Redis stream read for group {group!r}: {describe(exc)}")
                )
                await asyncio.sleep(self.reconnect_backoff[0])

    async def _deliver_entries(
        self, client: aioredis.Redis, stream: bytes, group: str, entries: list[Any]
    ) -> None:
        """Hand each entry to one local member of ``group``, then XACK them all."""
        if not entries:
            return
        ids = []
        assert self._deliver is not None
        for entry_id, fields in entries:
            ids.append(entry_id)
            data = fields.get(b"e") if fields else None
            if data is None:
                continue  # trimmed away meanwhile (XAUTOCLAIM reports it without fields)
            try:
                env = decode_envelope(data)
            except BackplaneProtocolError as exc:
                self._report(exc)
                continue
            self.group_deliveries += 1
            try:
                self._deliver(
                    BackplaneMessage(env.topic, env.kind, env.frame, env.origin, (group,), True)
                )
            except Exception as exc:
                self._report(exc)
        await client.xack(stream, group, *ids)

    async def _listen(self, session: _Session) -> None:
        pubsub = session.pubsub
        probing = False
        while True:
            # A silent connection gets a PING; no answer within another interval
            # means Redis hangs or the network dropped us without a reset.
            msg = await pubsub.get_message(timeout=self.health_interval)
            if msg is None:
                if probing:
                    raise TimeoutError(f"no answer from Redis within {self.health_interval:.1f}s")
                probing = True
                await pubsub.ping()
                continue
            probing = False
            mtype = msg["type"]
            if mtype == "message":
                self._on_data(msg["data"])
            elif mtype in ("subscribe", "unsubscribe"):
                waiters = session.acks.get((mtype, msg["channel"]))
                if waiters:
                    fut = waiters.popleft()
                    if not fut.done():
                        fut.set_result(None)
            elif mtype == "pong":
                if session.pong is not None and not session.pong.done():
                    session.pong.set_result(None)
                else:
                    self.health_pongs += 1
                    if self.on_health_pong is not None:
                        self.on_health_pong()

    def _on_data(self, data: bytes) -> None:
        try:
            env = decode_envelope(data)
        except BackplaneProtocolError as exc:
            self._report(exc)  # someone else publishes garbage on our channel
            return
        if env.op == _JOIN:
            self._note_grouped(env.topic)  # publishers XADD for this topic from now on
            return
        if env.op != _DELIVER or env.origin == self.node_id:
            return
        self.received += 1
        assert self._deliver is not None
        try:
            self._deliver(BackplaneMessage(env.topic, env.kind, env.frame, env.origin))
        except Exception as exc:
            self._report(exc)

    async def _send_loop(self, session: _Session) -> None:
        outbox = self._outbox
        ready = self._outbox_ready
        assert ready is not None
        while True:
            if not outbox:
                self._idle.set()
                ready.clear()
                await ready.wait()
                continue
            batch: list[tuple[bytes, bytes, int]] = []
            batch_bytes = 0
            while outbox and len(batch) < 512 and batch_bytes < self.max_batch_bytes:
                item = outbox.popleft()
                batch.append(item)
                batch_bytes += len(item[1])
            self._outbox_bytes -= batch_bytes
            try:
                if len(batch) == 1 and batch[0][2] == _PUBLISH:
                    await getattr(session.client, self.publish_command)(batch[0][0], batch[0][1])
                else:
                    pipe = session.client.pipeline(transaction=False)
                    for target, data, op in batch:
                        if op == _XADD:
                            pipe.xadd(
                                target,
                                {b"e": data},
                                maxlen=self.group_stream_maxlen,
                                approximate=True,
                            )
                        else:
                            getattr(pipe, self.publish_command)(target, data)
                    await pipe.execute()
            except _FAULTS as exc:
                self._count_drop(len(batch), batch_bytes)
                self._report(
                    BackplaneUnavailable(
                        f"Redis publish failed on {redact_url(self.url)}: {describe(exc)} "
                        f"({len(batch)} message(s) not sent to other nodes)"
                    )
                )
                continue
            self.sent += len(batch)
