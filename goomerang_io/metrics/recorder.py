"""The two recorders, ServerMetrics and ClientMetrics: one method per event, Go names."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Gauge,
    Histogram,
)

from .buffer import _Buffered, _BufferedChildren, _flusher
from .families import (
    _INFLIGHT_HELP,
    _PROCESSING_HELP,
    _RECEIVED_SIZE_HELP,
    _SENT_SIZE_HELP,
    _SENT_TIME_HELP,
    DEFAULT_DURATION_BUCKETS,
    DEFAULT_SIZE_BUCKETS,
    _buckets,
    _Children,
    _Family,
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
        self.size_buckets = _buckets(size_buckets, DEFAULT_SIZE_BUCKETS)
        self.duration_buckets = _buckets(duration_buckets, DEFAULT_DURATION_BUCKETS)
        self.prefix = f"{namespace}_{self.side}"
        self._buffers: list[_Buffered] = []  # every buffered child, flushed together
        self._pending = False
        self._workers_delta = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._lock = threading.Lock()
        self._topic_labels: set[str] = set()
        _flusher(self.registry).recorders.add(self)
        f = _Family(self.registry)
        self._f = f
        p, side, kind = self.prefix, self.side, ("kind",)
        dur, size = self.duration_buckets, self.size_buckets
        self.inflight = f.histogram(
            f"{p}_message_received_inflight_duration_seconds", _INFLIGHT_HELP, kind, dur
        )
        self.received_size = f.histogram(
            f"{p}_message_received_size_bytes", _RECEIVED_SIZE_HELP, kind, size
        )
        self.sent_size = f.histogram(f"{p}_message_sent_size_bytes", _SENT_SIZE_HELP, kind, size)
        self.sent_duration = f.histogram(
            f"{p}_message_sent_duration_seconds", _SENT_TIME_HELP, kind, dur
        )
        self.processing = f.histogram(
            f"{p}_message_processing_duration_seconds", _PROCESSING_HELP, kind, dur
        )
        self.status = f.gauge(
            f"{p}_status",
            f"The current status of the {side} (0 => New, 1 => Running, 2=> Closing, 3 => closed)",
            "livemax",
        )
        self.concurrent_workers = f.gauge(
            f"{p}_concurrent_workers",
            f"The current number of running workers in the {side}",
            "livesum",
        )
        self.config_max_concurrency = f.gauge(
            f"{p}_config_max_concurrency",
            f"The configured maximum number of parallel workers in the {side}",
            "livesum",
        )
        self.errors = f.counter(f"{p}_errors", f"The errors happened in {side}")
        self._inflight = self._children(self.inflight)
        self._received_size = self._children(self.received_size)
        self._sent_size = self._children(self.sent_size)
        self._sent_duration = self._children(self.sent_duration)
        self._processing = self._children(self.processing)
        self._side_families(self._f, self.prefix, namespace)

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

    def _side_families(self, f: _Family, p: str, ns: str) -> None:
        """The families only one side has (``p``: ``<namespace>_<side>``)."""

    def _children(self, h: Histogram) -> _BufferedChildren:
        return _BufferedChildren(h, self)

    # ------------------------------------------------------------ buffering
    def _mark(self) -> None:
        """Something was buffered: flush at the end of this loop iteration (now without a loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._pending = True
        self._loop = loop
        self._loop_thread = threading.get_ident()
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every buffered observation to prometheus_client now."""
        with self._lock:
            self._pending = False
            for buf in self._buffers:
                if buf.n:
                    buf.flush()
            delta, self._workers_delta = self._workers_delta, 0
            if delta:
                self.concurrent_workers.inc(delta)

    def flush_from_any_thread(self, timeout: float = 1.0) -> None:
        """Flush before a collection; from another thread, ask the recorder's loop to do it."""
        loop = self._loop
        if not self._pending:
            return
        if loop is None or self._loop_thread == threading.get_ident() or not loop.is_running():
            self.flush()  # nothing records concurrently: no loop, our thread, or a stopped loop
            return
        done = threading.Event()

        def run() -> None:
            self.flush()
            done.set()

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # the loop closed meanwhile: nobody records any more
            self.flush()
            return
        done.wait(timeout)

    def message_received(self, kind: str, size: int, inflight_seconds: float | None) -> None:
        """A message of ``kind`` arrived: payload ``size`` bytes, ``inflight_seconds``
        since the sender packed it (None when the frame had no creation time)."""
        self._received_size.get(kind).observe(size)
        if inflight_seconds is not None:
            self._inflight.get(kind).observe(max(inflight_seconds, 0.0))
        if not self._pending:
            self._mark()

    def message_processed(self, kind: str, seconds: float) -> None:
        """The handler chain for a message of ``kind`` ran for ``seconds``."""
        self._processing.get(kind).observe(seconds)
        if not self._pending:
            self._mark()

    def message_sent(self, kind: str, size: int, seconds: float) -> None:
        """A message of ``kind`` (payload ``size`` bytes) was written in ``seconds``."""
        self._sent_size.get(kind).observe(size)
        self._sent_duration.get(kind).observe(seconds)
        if not self._pending:
            self._mark()

    def error(self) -> None:
        """Count one error (what the error hook reports)."""
        self.errors.inc()

    def set_status(self, status: int) -> None:
        """Record the lifecycle status (0 NEW, 1 RUNNING, 2 CLOSING, 3 CLOSED)."""
        self.status.set(int(status))

    def worker_started(self) -> None:
        """A handler started running (Go's concurrent workers)."""
        self._workers_delta += 1
        if not self._pending:
            self._mark()

    def worker_finished(self) -> None:
        """A handler finished running."""
        self._workers_delta -= 1
        if not self._pending:
            self._mark()

    def set_max_concurrency(self, n: int) -> None:
        """Record the configured maximum number of concurrently running handlers."""
        self.config_max_concurrency.set(n)


class ServerMetrics(_Recorder):
    """Metrics of a goomerang server (``goomerang_server_*``).

    ``size_buckets`` apply to the received/sent size histograms,
    ``duration_buckets`` to every duration histogram; the defaults are Go
    goomerang's. ``registry`` defaults to prometheus_client's ``REGISTRY``.
    """

    side = "server"

    def _side_families(self, f: _Family, p: str, ns: str) -> None:
        self.broadcast_duration = f.histogram(
            f"{p}_message_broadcast_sent_duration_seconds",
            "The time spent in a broadcast operation",
            ("kind",),
            self.duration_buckets,
        )
        self.broadcast_client = f.counter(
            f"{p}_broadcast_client",
            "The number of successful broadcast commands processed by the server "
            "(requested from client side).",
            ("message",),
        )
        self.pubsub_subscribe = f.counter(
            f"{ns}_server_pubsub_subscribe",
            "The number of successful subscribe commands processed by the server.",
            ("topic",),
        )
        self.pubsub_publish = f.counter(
            f"{ns}_server_pubsub_publish",
            "The number of successful publish commands processed by the server.",
            ("topic", "message"),
        )
        self.pubsub_unsubscribe = f.counter(
            f"{ns}_server_pubsub_unsubscribe",
            "The number of successful unsubscribe commands processed by the server.",
            ("topic",),
        )
        self.connections_open = f.gauge(
            f"{p}_connections_open",
            "The number of WebSocket connections currently open on the server",
            "livesum",
        )
        # Created on the first set_backplane_up(): a server without a
        # backplane exposes no series rather than a misleading 0.
        self.backplane_up: Gauge | None = None
        self._group_families: dict[str, Any] | None = None
        self._backplane_dropped: Any = None
        self._broadcast_duration = _Children(self.broadcast_duration)
        self._broadcast_client = _Children(self.broadcast_client)
        self._subscribe = _Children(self.pubsub_subscribe)
        self._publish = _Children(self.pubsub_publish)
        self._unsubscribe = _Children(self.pubsub_unsubscribe)

    def broadcast_sent(self, kind: str, seconds: float) -> None:
        """A broadcast of ``kind`` to every connection took ``seconds``."""
        self._broadcast_duration.get(kind).observe(seconds)

    def client_broadcast(self, kind: str) -> None:
        """A client's broadcast command for a message of ``kind`` was processed."""
        self._broadcast_client.get(kind).inc()

    def subscribed(self, topic: str) -> None:
        """A subscribe command for ``topic`` was processed."""
        self._subscribe.get(self.topic_label(topic)).inc()

    def unsubscribed(self, topic: str) -> None:
        """An unsubscribe command for ``topic`` was processed."""
        self._unsubscribe.get(self.topic_label(topic)).inc()

    def published(self, topic: str, kind: str) -> None:
        """A publish command of a ``kind`` message to ``topic`` was processed."""
        self._publish.get(self.topic_label(topic), kind).inc()

    def connection_opened(self) -> None:
        """A WebSocket connection completed its handshake."""
        self.connections_open.inc()

    def connection_closed(self) -> None:
        """A WebSocket connection went away."""
        self.connections_open.dec()

    #: Distinct queue-group names that get their own label value; later ones
    #: are counted under ``group="_other"`` (a bounded label set: group names
    #: come from clients).
    max_group_labels = 100

    def group_delivered(self, group: str) -> None:
        """A message was written to one member of queue ``group``."""
        self._group_child("deliveries", group).inc()

    def group_dropped(self, group: str) -> None:
        """A message for queue ``group`` was dropped: no open member to take it."""
        self._group_child("drops", group).inc()

    def _group_child(self, what: str, group: str) -> Any:
        families = self._group_families
        if families is None:
            # Created on first use: a server without queue groups exposes no series.
            deliveries = self._f.counter(
                f"{self.prefix}_group_deliveries",
                "Messages written to one member of a queue group (label set bounded: "
                f"{self.max_group_labels} group names, then _other)",
                ("group",),
            )
            drops = self._f.counter(
                f"{self.prefix}_group_drops",
                "Messages for a queue group dropped because no member could take them",
                ("group",),
            )
            families = {
                "deliveries": _Children(deliveries),
                "drops": _Children(drops),
                "names": set(),
            }
            self._group_families = families
        names: set[str] = families["names"]
        if group not in names:
            if len(names) >= self.max_group_labels:
                group = "_other"
            else:
                names.add(group)
        return families[what].get(group)

    def backplane_dropped(self, messages: int) -> None:
        """``messages`` broadcasts/publishes did not reach the other workers or nodes."""
        if self._backplane_dropped is None:
            # Created on first use, as backplane_up: no backplane, no series.
            self._backplane_dropped = self._f.counter(
                f"{self.prefix}_backplane_dropped",
                "Broadcasts and publishes not relayed to the other workers or nodes "
                "(backplane down, or its byte bound reached)",
            )
        self._backplane_dropped.inc(messages)

    def set_backplane_up(self, up: bool) -> None:
        """Record whether the backplane is connected (the series appears on the first call)."""
        if self.backplane_up is None:
            self.backplane_up = self._f.gauge(
                f"{self.prefix}_backplane_up",
                "1 when the backplane (cross-worker broadcast and publish) is connected, else 0",
                "livemin",
            )
        self.backplane_up.set(1 if up else 0)


class ClientMetrics(_Recorder):
    """Metrics of a goomerang client (``goomerang_client_*``); see :class:`ServerMetrics`."""

    side = "client"

    def _side_families(self, f: _Family, p: str, ns: str) -> None:
        self.sync_duration = f.histogram(
            f"{p}_message_sent_sync_duration_seconds",
            "The time spent in a synchronous message sending operation",
            ("kind",),
            self.duration_buckets,
        )
        self.broadcast_cmd = f.counter(
            f"{p}_broadcast_cmd_sent",
            "The number of broadcast commands sent by the client to the server.",
            ("message",),
        )
        self.subscribe_cmd = f.counter(
            f"{ns}_client_pubsub_subscribe_cmd_sent",
            "The number of subscribe commands sent by the client to the server.",
            ("topic",),
        )
        self.publish_cmd = f.counter(
            f"{ns}_client_pubsub_publish_cmd_sent",
            "The number of publish commands sent by the client to the server.",
            ("topic", "message"),
        )
        self.unsubscribe_cmd = f.counter(
            f"{ns}_client_pubsub_unsubscribe_cmd_sent",
            "The number of unsubscribe commands sent by the client to the server.",
            ("topic",),
        )
        self._sync = self._children(self.sync_duration)
        self._broadcast_cmd = _Children(self.broadcast_cmd)
        self._subscribe_cmd = _Children(self.subscribe_cmd)
        self._publish_cmd = _Children(self.publish_cmd)
        self._unsubscribe_cmd = _Children(self.unsubscribe_cmd)

    def sync_sent(self, kind: str, seconds: float, size: int | None = None) -> None:
        """A sync request of ``kind`` got its reply after ``seconds``.

        Go also observes the sent size of a sync request (not its sent
        duration); pass ``size`` to do the same.
        """
        self._sync.get(kind).observe(seconds)
        if size is not None:
            self._sent_size.get(kind).observe(size)
        if not self._pending:
            self._mark()

    def broadcast_cmd_sent(self, kind: str) -> None:
        """A broadcast command for a ``kind`` message was sent."""
        self._broadcast_cmd.get(kind).inc()

    def subscribe_cmd_sent(self, topic: str) -> None:
        """A subscribe command for ``topic`` was sent."""
        self._subscribe_cmd.get(self.topic_label(topic)).inc()

    def publish_cmd_sent(self, topic: str, kind: str) -> None:
        """A publish command of a ``kind`` message to ``topic`` was sent."""
        self._publish_cmd.get(self.topic_label(topic), kind).inc()

    def unsubscribe_cmd_sent(self, topic: str) -> None:
        """An unsubscribe command for ``topic`` was sent."""
        self._unsubscribe_cmd.get(self.topic_label(topic)).inc()


# ---------------------------------------------------------------- exposition
