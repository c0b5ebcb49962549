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

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

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
from .redis_groups import StreamGroups
from .redis_outbox import PUBLISH, XADD, Outbox
from .redis_session import FAULTS, Session, redact_url

__all__ = ["RedisBackplane", "redact_url"]

_DELIVER = pb.Envelope.DELIVER
_JOIN = pb.Envelope.JOIN


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
        self.group_stream_maxlen = group_stream_maxlen
        self._outbox = Outbox(max_outbox, max_outbox_bytes, max_batch_bytes)
        self._groups = StreamGroups(
            node_id=self.node_id,
            channel_prefix=channel_prefix,
            broadcast_channel=self.broadcast_channel,
            publish_command=self.publish_command,
            new_client=self._new_client,
            report=self._report,
            count_drop=self._count_drop,
            stream_maxlen=group_stream_maxlen,
            claim_idle=claim_idle,
            max_topics=max_group_topics,
            retry_delay=reconnect_backoff[0],
        )
        self._deliver: DeliverCallback | None = None
        self._on_error: ErrorCallback | None = None
        self._topics: set[str] = set()
        self._session: Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._first_attempt: asyncio.Event | None = None
        self._connected_event = asyncio.Event()
        self._closing = False
        self._outage_reported = False
        self.reconnects = 0
        self.received = 0
        self.health_pongs = 0  # health pings Redis answered (the connect ping not counted)
        # Called after each answered health ping (observability, tests).
        self.on_health_pong: Callable[[], None] | None = None
        self.last_error: str | None = None

    # the bounds and counters its parts own (read-only but group_read_count)
    @property
    def sent(self) -> int:
        """Messages Redis accepted for the other nodes."""
        return self._outbox.sent

    @property
    def max_outbox(self) -> int:
        """At most this many messages wait for Redis; past it, new ones are dropped."""
        return self._outbox.max_items

    @property
    def max_outbox_bytes(self) -> int:
        """At most this many bytes wait for Redis; past it, new messages are dropped."""
        return self._outbox.max_bytes

    @property
    def max_batch_bytes(self) -> int:
        """At most this many bytes go to Redis in one batch."""
        return self._outbox.max_batch_bytes

    @property
    def group_read_count(self) -> int:
        """Entries one XREADGROUP takes at most (16: the nodes' consumers take turns)."""
        return self._groups.read_count

    @group_read_count.setter
    def group_read_count(self, count: int) -> None:
        self._groups.read_count = count

    @property
    def claim_idle(self) -> float:
        """Seconds a group entry stays pending before another consumer claims it."""
        return self._groups.claim_idle

    @property
    def max_group_topics(self) -> int:
        """At most this many topics with queue groups are tracked."""
        return self._groups.max_topics

    @property
    def grouped_key(self) -> bytes:
        """The Redis set of the topics with queue groups."""
        return self._groups.grouped_key

    @property
    def group_deliveries(self) -> int:
        """Stream entries handed to a local member."""
        return self._groups.deliveries

    @property
    def group_claimed(self) -> int:
        """Stale entries of a dead consumer claimed here."""
        return self._groups.claimed

    @property
    def group_skipped(self) -> int:
        """Entries left with no member, skipped on a join (counted as dropped)."""
        return self._groups.skipped

    def stream_key(self, topic: str) -> bytes:
        """The Redis stream of ``topic``'s queue groups."""
        return self._groups.stream_key(topic)

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
        self._groups.deliver = deliver
        self._on_error = on_error
        self._first_attempt = asyncio.Event()
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
        if topic in self._groups.grouped:
            self._enqueue(self.stream_key(topic), data, XADD)

    async def join(self, topic: str, group: str) -> None:
        """One more local member of ``group``: the first one makes this node a consumer."""
        if not self._groups.add_member(topic, group):
            return
        session = self._session
        if session is not None and session.connected:
            await self._groups.start_consumer(session, topic, group)

    async def leave(self, topic: str, group: str) -> None:
        """One local member of ``group`` left: with the last one, stop consuming.

        Entries this node read but did not acknowledge are claimed by another
        consumer after ``claim_idle``.
        """
        if self._groups.remove_member(topic, group):
            await self._groups.stop_consumer(self._session, topic, group)

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

    async def wait_sent(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until everything queued went to Redis; whether it did."""
        await self._outbox.wait_idle(timeout)
        return not self._outbox

    async def wait_connected(self) -> None:
        """Return once subscribed on a live Redis connection."""
        await self._connected_event.wait()

    async def _confirmed(self, session: Session, what: str, topic: str) -> None:
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
        except FAULTS as exc:
            self._report(BackplaneUnavailable(f"Redis {what} {topic!r} failed: {describe(exc)}"))

    async def close(self) -> None:
        """Send what is queued (bounded by ``connect_timeout``), stop, disconnect. Idempotent."""
        if self.healthy() and self._outbox:
            await self._outbox.wait_idle(self.connect_timeout)
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
            "queued_bytes": self._outbox.nbytes,
            "group_topics": len(self._groups.grouped),
            "group_deliveries": self._groups.deliveries,
            "group_claimed": self._groups.claimed,
            "group_skipped": self._groups.skipped,
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

    def _enqueue(self, channel: bytes, data: bytes, op: int = PUBLISH) -> None:
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
        outbox = self._outbox
        if not outbox.put(channel, data, op):
            self._count_drop(1, len(data))
            if outbox.overflow():
                self._report(
                    BackplaneUnavailable(
                        f"Redis backplane {redact_url(self.url)} is not keeping up: "
                        f"{outbox.nbytes} bytes queued (max_outbox_bytes="
                        f"{outbox.max_bytes}); message not sent to other nodes "
                        "(further drops are counted)"
                    )
                )

    def _new_client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.connect_timeout,
            health_check_interval=0,
        )

    def _new_session(self) -> Session:
        client = self._new_client()
        return Session(client, client.pubsub())

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
                self._count_drop(*self._outbox.clear())
                await session.close()
            first = False
            assert self._first_attempt is not None
            self._first_attempt.set()
            delay = next_backoff(delay, base, cap)
            await asyncio.sleep(delay)

    async def _open(self, session: Session) -> None:
        """Ping, subscribe to every channel, wait until Redis confirmed them all."""
        held = set(self._topics)
        channels = [self.broadcast_channel, *(self.topic_channel(t) for t in sorted(held))]
        await self._subscribe_all(session, channels)
        # queue groups: learn the grouped topics, consume the groups held here
        await self._groups.learn_grouped(session)
        for topic, group in sorted(self._groups.members):
            await self._groups.start_consumer(session, topic, group)
        session.connected = True
        self._connected_event.set()
        self._health_changed(True)
        missing = self._topics - held  # subscribed while this session was opening
        if missing:
            await session.pubsub.subscribe(*(self.topic_channel(t) for t in sorted(missing)))
        gone = held - self._topics  # unsubscribed while this session was opening
        if gone:
            await session.pubsub.unsubscribe(*(self.topic_channel(t) for t in sorted(gone)))
        session.sender = asyncio.ensure_future(
            self._outbox.send(
                session.client, self.publish_command, self.group_stream_maxlen, self._send_failed
            )
        )

    async def _subscribe_all(self, session: Session, channels: list[bytes]) -> None:
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

    async def _listen(self, session: Session) -> None:
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
            self._groups.note_grouped(env.topic)  # publishers XADD for this topic from now on
            return
        if env.op != _DELIVER or env.origin == self.node_id:
            return
        self.received += 1
        assert self._deliver is not None
        try:
            self._deliver(BackplaneMessage(env.topic, env.kind, env.frame, env.origin))
        except Exception as exc:
            self._report(exc)

    def _send_failed(self, messages: int, nbytes: int, exc: BaseException) -> None:
        self._count_drop(messages, nbytes)
        self._report(
            BackplaneUnavailable(
                f"Redis publish failed on {redact_url(self.url)}: {describe(exc)} "
                f"({messages} message(s) not sent to other nodes)"
            )
        )
