"""The two recorders, ServerMetrics and ClientMetrics: one method per event, Go names."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from goomerang_proto.message import Message
from goomerang_proto.router import Handler, Middleware

from .exporter import MULTIPROC_ENV, Exporter, Table, exporter_for
from .families import (
    DEFAULT_DURATION_BUCKETS,
    DEFAULT_SIZE_BUCKETS,
    Family,
    check_buckets,
    client_families,
    common_families,
    server_families,
    server_lazy_families,
)

__all__ = ["MAX_TOPIC_LABELS", "OTHER_TOPIC", "ClientMetrics", "ServerMetrics"]

MAX_TOPIC_LABELS = 1000
"""Distinct ``topic`` label values per recorder; later topics are counted under OTHER_TOPIC."""
OTHER_TOPIC = "_other"


class _Recorder:
    """What the server and client recorders share: the common Go families."""

    side = ""

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        size_buckets: Sequence[float] | None = None,
        duration_buckets: Sequence[float] | None = None,
        namespace: str = "goomerang",
    ) -> None:
        self.registry = registry if registry is not None else REGISTRY
        self.size_buckets = check_buckets(size_buckets, DEFAULT_SIZE_BUCKETS)
        self.duration_buckets = check_buckets(duration_buckets, DEFAULT_DURATION_BUCKETS)
        self.prefix = f"{namespace}_{self.side}"
        self.families: dict[str, Family] = common_families(
            self.prefix, self.side, self.size_buckets, self.duration_buckets
        )
        self.families.update(self._side_families(namespace))
        eager = [f.name for f in self.families.values()]
        lazy = self._lazy_families()
        self.families.update(lazy)
        self._exporter: Exporter = exporter_for(self.registry, self.prefix, self.families, eager)
        self._topic_labels: set[str] = set()
        # True when nothing needs writing at the end of a loop iteration: always in
        # one process (a collection reads the values themselves), after the
        # scheduled write in multiprocess mode.
        self._multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self._pending = not self._multiprocess
        self._values: Table = {}
        self._init_values()
        self._exporter.add(self)

    def _side_families(self, namespace: str) -> dict[str, Family]:
        """The families only one side has, exposed from the start."""
        return {}

    def _lazy_families(self) -> dict[str, Family]:
        """The families exposed on first use only."""
        return {}

    def _init_values(self) -> None:
        """Empty tables; the hot-path references to them."""
        f = self.families
        v = self._values
        for fam in f.values():
            if not fam.settable:
                v[fam.name] = {}
        # bisect compares ints with ints faster than with floats: integral bounds as ints
        self._sb = tuple(int(b) if float(b).is_integer() else b for b in self.size_buckets)
        self._db = self.duration_buckets
        self._db0 = self.duration_buckets[0]  # most durations fall in the first bucket
        self._size_width = len(self.size_buckets) + 2
        self._duration_width = len(self.duration_buckets) + 2
        self._inflight = v[f["inflight"].name]
        self._received_size = v[f["received_size"].name]
        self._sent_size = v[f["sent_size"].name]
        self._sent_duration = v[f["sent_duration"].name]
        self._processing = v[f["processing"].name]
        self._workers = v[f["concurrent_workers"].name][()] = [0.0]
        self._errors = v[f["errors"].name][()] = [0.0]
        # kind -> the sent size and duration series (always recorded together)
        self._sent: dict[str, tuple[list[float], list[float]]] = {}

    def _unlabelled(self) -> dict[str, list[float]]:
        """The one-value series held by reference on the hot path (family name -> series)."""
        f = self.families
        return {f["concurrent_workers"].name: self._workers, f["errors"].name: self._errors}

    def _forked(self) -> None:
        """Multiprocess mode, in a forked child: start from zero (see Exporter._forked).

        The tables and one-value series are emptied in place: the handler
        middleware holds them.
        """
        keep = self._unlabelled()
        for series in self._values.values():
            series.clear()
        self._sent.clear()
        for name, one in keep.items():
            one[0] = 0.0
            self._values[name][()] = one
        self._pending = False

    def topic_label(self, topic: str) -> str:
        """The ``topic`` label value: the topic itself for the first MAX_TOPIC_LABELS topics.

        Topics are chosen by peers (subscribe and publish commands), so the
        label set is bounded: later topics share the label ``OTHER_TOPIC``
        (the metric names stay Go goomerang's).
        """
        labels = self._topic_labels
        if topic in labels:
            return topic
        if len(labels) < MAX_TOPIC_LABELS:
            labels.add(topic)
            return topic
        return OTHER_TOPIC

    # ------------------------------------------------------------ writing
    def _mark(self) -> None:
        """Multiprocess mode: write this process's file at the end of this loop iteration
        (now, without a running loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._exporter.write()
            return
        self._pending = True
        loop.call_soon(self._write_soon)

    def _write_soon(self) -> None:
        self._pending = False
        self._exporter.write()

    def flush(self) -> None:
        """Multiprocess mode: write this process's values to its file now.

        In one process there is nothing to write (a collection reads the
        values themselves); scrapes through :func:`metrics_http_response`
        write first anyway.
        """
        if self._multiprocess:
            self._exporter.write()

    def _count(self, table: dict[Any, list[float]], key: Any, n: float = 1) -> None:
        series = table.get(key)
        if series is None:
            table[key] = [float(n)]
        else:
            series[0] += n
        if not self._pending:
            self._mark()

    def _set(self, family: str, value: float) -> None:
        self._exporter.settings[self.families[family].name] = float(value)
        if self._multiprocess:
            self._exporter.write()  # rare: at once (a CLOSED status is written before exit)

    # ------------------------------------------------------------ events
    def message_received(self, kind: str, size: int, inflight_seconds: float | None) -> None:
        """A message of ``kind`` arrived: payload ``size`` bytes, ``inflight_seconds``
        since the sender packed it (None when the frame had no creation time;
        negative clock skew counts as 0)."""
        s = self._received_size.get(kind)
        if s is None:
            s = self._received_size[kind] = [0.0] * self._size_width
        s[bisect_left(self._sb, size)] += 1.0
        s[-1] += size
        if inflight_seconds is not None:
            if inflight_seconds < 0.0:
                inflight_seconds = 0.0
            s = self._inflight.get(kind)
            if s is None:
                s = self._inflight[kind] = [0.0] * self._duration_width
            if inflight_seconds <= self._db0:
                s[0] += 1.0
            else:
                s[bisect_left(self._db, inflight_seconds)] += 1.0
            s[-1] += inflight_seconds
        if not self._pending:
            self._mark()

    def message_processed(self, kind: str, seconds: float) -> None:
        """The handler chain for a message of ``kind`` ran for ``seconds``."""
        s = self._processing.get(kind)
        if s is None:
            s = self._processing[kind] = [0.0] * self._duration_width
        if seconds <= self._db0:
            s[0] += 1.0
        else:
            s[bisect_left(self._db, seconds)] += 1.0
        s[-1] += seconds
        if not self._pending:
            self._mark()

    def message_sent(self, kind: str, size: int, seconds: float) -> None:
        """A message of ``kind`` (payload ``size`` bytes) was written in ``seconds``."""
        pair = self._sent.get(kind)
        if pair is None:
            pair = self._sent[kind] = (
                self._sent_size.setdefault(kind, [0.0] * self._size_width),
                self._sent_duration.setdefault(kind, [0.0] * self._duration_width),
            )
        s, d = pair
        s[bisect_left(self._sb, size)] += 1.0
        s[-1] += size
        s = d
        if seconds <= self._db0:
            s[0] += 1.0
            if seconds:  # the server's writes take no measurable time: 0.0 adds nothing
                s[-1] += seconds
        else:
            s[bisect_left(self._db, seconds)] += 1.0
            s[-1] += seconds
        if not self._pending:
            self._mark()

    def handler_middleware(self) -> Middleware:
        """The middleware that records every handled message (what ``metrics_middleware`` gives).

        Before the chain: the received size and inflight time (wall clock
        since the sender packed the frame; none without a creation time,
        negative skew counts as 0), and one more concurrent worker. After it,
        even when it raised: the processing time, one worker less. Equal to
        ``message_received``, ``worker_started``, ``message_processed`` and
        ``worker_finished`` called in that order, but inlined: this runs once
        per message. A handler's awaitable is awaited in a coroutine; a plain
        function's result is returned as is (no coroutine per message).
        """
        received, processed, workers = self._received_size, self._processing, self._workers
        inflight_table = self._inflight
        db0 = self._db0
        sb, db, size_width, duration_width = (
            self._sb,
            self._db,
            self._size_width,
            self._duration_width,
        )
        clock, wall = time.perf_counter, time.time_ns
        rec = self

        def done(kind: str, start: float) -> None:
            seconds = clock() - start
            s = processed.get(kind)
            if s is None:
                s = processed[kind] = [0.0] * duration_width
            if seconds <= db0:
                s[0] += 1.0
            else:
                s[bisect_left(db, seconds)] += 1.0
            s[-1] += seconds
            workers[0] -= 1.0
            if not rec._pending:
                rec._mark()

        async def finish(pending: Any, kind: str, start: float) -> None:
            try:
                await pending
            finally:
                done(kind, start)

        def middleware(next_handler: Handler) -> Handler:
            def handler(sender: Any, message: Message[Any]) -> Any:
                kind = message.kind
                size = message.payload_size
                s = received.get(kind)
                if s is None:
                    s = received[kind] = [0.0] * size_width
                s[bisect_left(sb, size)] += 1.0
                s[-1] += size
                created = message.creation_ns
                if created:
                    inflight = (wall() - created) / 1e9
                    if inflight < 0.0:
                        inflight = 0.0
                    s = inflight_table.get(kind)
                    if s is None:
                        s = inflight_table[kind] = [0.0] * duration_width
                    if inflight <= db0:
                        s[0] += 1.0
                    else:
                        s[bisect_left(db, inflight)] += 1.0
                    s[-1] += inflight
                workers[0] += 1.0
                start = clock()
                try:
                    result = next_handler(sender, message)
                except BaseException:
                    done(kind, start)
                    raise
                if result is not None and inspect.isawaitable(result):
                    return finish(result, kind, start)
                seconds = clock() - start
                s = processed.get(kind)
                if s is None:  # created now, not before: a handler still running shows none
                    s = processed[kind] = [0.0] * duration_width
                if seconds <= db0:
                    s[0] += 1.0
                else:
                    s[bisect_left(db, seconds)] += 1.0
                s[-1] += seconds
                workers[0] -= 1.0
                if not rec._pending:
                    rec._mark()
                return None

            return handler

        return middleware

    def _observe(self, family: str, key: Any, value: float) -> None:
        """One observation in histogram ``family`` (an attribute name of self.families)."""
        fam = self.families[family]
        table = self._values[fam.name]
        s = table.get(key)
        if s is None:
            s = table[key] = [0.0] * fam.width()
        s[bisect_left(fam.buckets, value)] += 1.0
        s[-1] += value
        if not self._pending:
            self._mark()

    def error(self) -> None:
        """Count one error (what the error hook reports)."""
        self._errors[0] += 1.0
        if not self._pending:
            self._mark()

    def set_status(self, status: int) -> None:
        """Record the lifecycle status (0 NEW, 1 RUNNING, 2 CLOSING, 3 CLOSED)."""
        self._set("status", int(status))

    def worker_started(self) -> None:
        """A handler started running (Go's concurrent workers)."""
        self._workers[0] += 1.0
        if not self._pending:
            self._mark()

    def worker_finished(self) -> None:
        """A handler finished running."""
        self._workers[0] -= 1.0
        if not self._pending:
            self._mark()

    def set_max_concurrency(self, n: int) -> None:
        """Record the configured maximum number of concurrently running handlers."""
        self._set("config_max_concurrency", n)


class ServerMetrics(_Recorder):
    """Metrics of a goomerang server (``goomerang_server_*``).

    ``size_buckets`` apply to the received/sent size histograms,
    ``duration_buckets`` to every duration histogram; the defaults are Go
    goomerang's. ``registry`` defaults to prometheus_client's ``REGISTRY``.
    Raises ValueError for buckets that are not increasing, for other buckets
    than an earlier recorder of the same registry and namespace asked for,
    and when the registry holds one of the names already (another collector).
    """

    side = "server"

    #: Distinct queue-group names that get their own label value; later ones
    #: are counted under ``group="_other"`` (a bounded label set: group names
    #: come from clients).
    max_group_labels = 100

    def _side_families(self, namespace: str) -> dict[str, Family]:
        return server_families(self.prefix, namespace, self.duration_buckets)

    def _lazy_families(self) -> dict[str, Family]:
        return server_lazy_families(self.prefix, self.max_group_labels)

    def _init_values(self) -> None:
        super()._init_values()
        v, f = self._values, self.families
        self._connections = v[f["connections_open"].name][()] = [0.0]
        self._group_names: set[str] = set()

    def _unlabelled(self) -> dict[str, list[float]]:
        out = super()._unlabelled()
        out[self.families["connections_open"].name] = self._connections
        return out

    def broadcast_sent(self, kind: str, seconds: float) -> None:
        """A broadcast of ``kind`` to every connection took ``seconds``."""
        self._observe("broadcast_duration", kind, seconds)

    def client_broadcast(self, kind: str) -> None:
        """A client's broadcast command for a message of ``kind`` was processed."""
        self._count(self._values[self.families["broadcast_client"].name], kind)

    def subscribed(self, topic: str) -> None:
        """A subscribe command for ``topic`` was processed."""
        table = self._values[self.families["pubsub_subscribe"].name]
        self._count(table, self.topic_label(topic))

    def unsubscribed(self, topic: str) -> None:
        """An unsubscribe command for ``topic`` was processed."""
        table = self._values[self.families["pubsub_unsubscribe"].name]
        self._count(table, self.topic_label(topic))

    def published(self, topic: str, kind: str) -> None:
        """A publish command of a ``kind`` message to ``topic`` was processed."""
        table = self._values[self.families["pubsub_publish"].name]
        self._count(table, (self.topic_label(topic), kind))

    def connection_opened(self) -> None:
        """A WebSocket connection completed its handshake."""
        self._connections[0] += 1.0
        if not self._pending:
            self._mark()

    def connection_closed(self) -> None:
        """A WebSocket connection went away."""
        self._connections[0] -= 1.0
        if not self._pending:
            self._mark()

    def group_delivered(self, group: str) -> None:
        """A message was written to one member of queue ``group``."""
        self._group("group_deliveries", group)

    def group_dropped(self, group: str) -> None:
        """A message for queue ``group`` was dropped: no open member to take it."""
        self._group("group_drops", group)

    def _group(self, family: str, group: str) -> None:
        names = self._group_names
        if group not in names:
            if len(names) >= self.max_group_labels:
                group = "_other"
            else:
                names.add(group)
        fam = self.families[family]
        self._exporter.declare(fam)  # created on first use: no queue groups, no series
        self._count(self._values[fam.name], group)

    def backplane_dropped(self, messages: int) -> None:
        """``messages`` broadcasts/publishes did not reach the other workers or nodes."""
        fam = self.families["backplane_dropped"]
        self._exporter.declare(fam)  # created on first use, as backplane_up
        self._count(self._values[fam.name], (), messages)

    def set_backplane_up(self, up: bool) -> None:
        """Record whether the backplane is connected (the series appears on the first call)."""
        self._exporter.declare(self.families["backplane_up"])
        self._set("backplane_up", 1 if up else 0)


class ClientMetrics(_Recorder):
    """Metrics of a goomerang client (``goomerang_client_*``); see :class:`ServerMetrics`."""

    side = "client"

    def _side_families(self, namespace: str) -> dict[str, Family]:
        return client_families(self.prefix, namespace, self.duration_buckets)

    def sync_sent(self, kind: str, seconds: float, size: int | None = None) -> None:
        """A sync request of ``kind`` got its reply after ``seconds``.

        Go also observes the sent size of a sync request (not its sent
        duration); pass ``size`` to do the same.
        """
        self._observe("sync_duration", kind, seconds)
        if size is not None:
            self._observe("sent_size", kind, size)

    def broadcast_cmd_sent(self, kind: str) -> None:
        """A broadcast command for a ``kind`` message was sent."""
        self._count(self._values[self.families["broadcast_cmd"].name], kind)

    def subscribe_cmd_sent(self, topic: str) -> None:
        """A subscribe command for ``topic`` was sent."""
        table = self._values[self.families["subscribe_cmd"].name]
        self._count(table, self.topic_label(topic))

    def publish_cmd_sent(self, topic: str, kind: str) -> None:
        """A publish command of a ``kind`` message to ``topic`` was sent."""
        table = self._values[self.families["publish_cmd"].name]
        self._count(table, (self.topic_label(topic), kind))

    def unsubscribe_cmd_sent(self, topic: str) -> None:
        """An unsubscribe command for ``topic`` was sent."""
        table = self._values[self.families["unsubscribe_cmd"].name]
        self._count(table, self.topic_label(topic))
