"""Queue groups over Redis Streams: this node's consumers, and which topics have groups.

A topic with queue groups somewhere has a stream; each goomerang queue group
is a Redis consumer group of it and each node with local members one
consumer (see :mod:`goomerang_io.backplane.redis` for the whole design).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from goomerang_proto.pb import goomerang_backplane_pb2 as pb

from .base import (
    BackplaneMessage,
    BackplaneProtocolError,
    BackplaneUnavailable,
    DeliverCallback,
    decode_envelope,
    describe,
)
from .redis_session import FAULTS, Session

_JOIN = pb.Envelope.JOIN


class StreamGroups:
    """One node's queue groups: local member counts, grouped topics, stream consumers.

    ``new_client()`` makes a Redis client (each consumer reads on its own);
    ``report(exc)`` and ``count_drop(messages)`` are the backplane's. The
    counters (``deliveries``, ``claimed``, ``skipped``) feed its ``status()``.
    """

    def __init__(
        self,
        *,
        node_id: str,
        channel_prefix: str,
        broadcast_channel: bytes,
        publish_command: str,
        new_client: Callable[[], aioredis.Redis],
        report: Callable[[Exception], None],
        count_drop: Callable[[int], None],
        stream_maxlen: int,
        claim_idle: float,
        max_topics: int,
        retry_delay: float,
    ) -> None:
        self.node_id = node_id
        self.channel_prefix = channel_prefix
        self.broadcast_channel = broadcast_channel
        self.publish_command = publish_command
        self.grouped_key = f"{channel_prefix}:grouped".encode()
        self.stream_maxlen = stream_maxlen
        #: Entries one XREADGROUP takes at most. Small: Redis hands entries to
        #: the consumer that asks first, so a big batch lets one node take a
        #: burst; with a few per read, the nodes' consumers take turns.
        self.read_count = 16
        self.claim_idle = claim_idle
        self.max_topics = max_topics
        self.retry_delay = retry_delay
        self.deliver: DeliverCallback | None = None
        self.members: dict[tuple[str, str], int] = {}  # local queue-group members
        self.grouped: set[str] = set()  # topics with queue groups on some node
        self.deliveries = 0  # stream entries handed to a local member
        self.claimed = 0  # stale entries of a dead consumer claimed here
        self.skipped = 0  # entries left with no member, skipped on a join
        self._new_client = new_client
        self._report = report
        self._count_drop = count_drop

    def stream_key(self, topic: str) -> bytes:
        """The Redis stream of ``topic``'s queue groups."""
        return f"{self.channel_prefix}:stream:{topic}".encode()

    def add_member(self, topic: str, group: str) -> bool:
        """One more local member of ``group``; True for the first (consume from now on)."""
        key = (topic, group)
        count = self.members.get(key, 0)
        self.members[key] = count + 1
        if count:
            return False
        self.note_grouped(topic)
        return True

    def remove_member(self, topic: str, group: str) -> bool:
        """One local member of ``group`` left; True for the last (stop consuming)."""
        key = (topic, group)
        count = self.members.get(key, 0)
        if count > 1:
            self.members[key] = count - 1
            return False
        self.members.pop(key, None)
        return True

    def note_grouped(self, topic: str) -> None:
        """``topic`` has queue groups somewhere: publishes XADD to its stream from now on."""
        if topic in self.grouped:
            return
        if len(self.grouped) >= self.max_topics:
            self._report(
                BackplaneUnavailable(
                    f"more than max_group_topics={self.max_topics} topics with queue "
                    f"groups: {topic!r} is served by one node only"
                )
            )
            return
        self.grouped.add(topic)

    async def learn_grouped(self, session: Session) -> None:
        """Read the grouped topics every node announced (at most ``max_topics``)."""
        grouped = await session.client.smembers(self.grouped_key)
        for raw in sorted(grouped)[: self.max_topics]:
            name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            self.note_grouped(name)

    async def start_consumer(self, session: Session, topic: str, group: str) -> None:
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

    async def stop_consumer(self, session: Session | None, topic: str, group: str) -> None:
        """Stop consuming ``group``; what was read but not acknowledged is claimed elsewhere."""
        task = session.consumers.pop((topic, group), None) if session is not None else None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, *FAULTS):
                await task

    async def _skip_orphaned_backlog(self, session: Session, stream: bytes, group: str) -> None:
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
        waiting = await client.xrange(stream, min=b"(" + last, count=self.stream_maxlen)
        await client.xgroup_setid(stream, group, id="$")
        if waiting:
            self.skipped += len(waiting)
            self._count_drop(len(waiting))

    async def _consume(self, session: Session, topic: str, group: str) -> None:
        """Read ``group``'s entries (and claim a dead consumer's) until cancelled.

        A client of its own: its blocking reads never wait behind (or hold up)
        the sender's publishes.
        """
        client = self._new_client()
        try:
            await self._consume_with(session, client, topic, group)
        finally:
            with contextlib.suppress(*FAULTS, RuntimeError):
                await client.aclose()

    async def _consume_with(
        self, session: Session, client: aioredis.Redis, topic: str, group: str
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
                    self.claimed += len(entries)
                    await self._deliver_entries(client, stream, group, entries)
                reply: Any = await client.xreadgroup(
                    group, self.node_id, {stream: ">"}, count=self.read_count, block=block_ms
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
            except FAULTS as exc:
                if not session.connected:
                    return  # the session ends; the next one restarts the consumers
                self._report(
                    BackplaneUnavailable(f"Redis stream read for group {group!r}: {describe(exc)}")
                )
                await asyncio.sleep(self.retry_delay)

    async def _deliver_entries(
        self, client: aioredis.Redis, stream: bytes, group: str, entries: list[Any]
    ) -> None:
        """Hand each entry to one local member of ``group``, then XACK them all."""
        if not entries:
            return
        ids = []
        assert self.deliver is not None
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
            self.deliveries += 1
            try:
                self.deliver(
                    BackplaneMessage(env.topic, env.kind, env.frame, env.origin, (group,), True)
                )
            except Exception as exc:
                self._report(exc)
        await client.xack(stream, group, *ids)
