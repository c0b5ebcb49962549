"""Prometheus metrics with the names, types, labels and help of Go goomerang v0.3.0.

Two recorders, :class:`ServerMetrics` and :class:`ClientMetrics`, own the
metric families; the server and the client call their methods (one method
per event) and never touch prometheus_client directly. Exposed names equal
the Go ones: histograms keep their names (``*_seconds``, ``*_bytes``, label
``kind``), counters are created without the ``_total`` suffix because
prometheus_client appends it (``Counter("goomerang_server_errors")`` is
exposed as ``goomerang_server_errors_total``). Beside the Go families the
server has two of ours: ``goomerang_server_connections_open`` and
``goomerang_server_backplane_up`` (exposed once a backplane reported).

Registries. By default every recorder registers in prometheus_client's
default ``REGISTRY``. Several recorders on one registry (a test suite that
starts many servers in one process) share the same collectors instead of
failing with "Duplicated timeseries"; they must ask for the same buckets.

Multiprocess mode (``goomerang serve --workers N``). prometheus_client keeps
each process's values in mmap files under ``PROMETHEUS_MULTIPROC_DIR`` when
that variable is set *before the first metric object is created*. Ordering,
which the supervisor must follow:

1. supervisor: :func:`prepare_multiprocess_dir` (creates or empties the
   directory, sets the variable, and switches prometheus_client's value
   class in this process so that workers forked afterwards write files
   even though prometheus_client was already imported);
2. supervisor: fork/spawn the workers; each worker then creates its
   :class:`ServerMetrics` (never before step 1);
3. supervisor: :func:`mark_worker_dead` with the pid of every worker it
   reaps, so that the ``live*`` gauges of the dead worker disappear;
4. any process: :func:`metrics_http_response` answers a scrape; it merges
   every worker's files through a fresh registry with
   ``MultiProcessCollector``.

Gauge aggregation across workers (``multiprocess_mode``):

* ``status``: ``livemax``, one series like Go, showing the most advanced
  live state (a worker that is CLOSING shows over the RUNNING ones);
* ``concurrent_workers``, ``config_max_concurrency``, ``connections_open``:
  ``livesum``, the totals of the live workers (busy handlers against the
  total allowed; open connections of the whole server);
* ``backplane_up``: ``livemin``, 0 as soon as one live worker has lost
  its backplane (what an alert wants).

In single-process mode these modes are ignored and every gauge is the plain
value of the process. Counters and histograms of a dead worker keep counting
in the sum (they are totals), as prometheus_client documents.

Buffering (the hot path). The per-message histograms (received size and
inflight time, processing time, sent size and duration, client sync time)
and the concurrent-workers gauge are not written to prometheus_client on
every message: a recorder counts observations per bucket in plain lists and
adds them to the prometheus_client children in one go, at the end of the
event-loop iteration that recorded them (``loop.call_soon``), whenever
their registry is collected as a whole in this process (``generate_latest``,
``get_sample_value``), and before ``metrics_http_response`` answers (which
also covers the multiprocess merge). Filtered collections
(``restricted_registry``) and other processes see them at the end of the
loop iteration; ``flush_all()`` writes them at once. With no running event
loop every observation is written at once. A pipelined
read of many messages thus costs a few writes instead of several per message,
which matters most in multiprocess mode, where each write goes to an mmap
file. ``flush()`` writes what is buffered now. A recorder buffers for the
event loop it records on: endpoints running on different threads each need
their own recorder (they may share a registry).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    exposition,
    generate_latest,
    multiprocess,
    values,
)

__all__ = [
    "DEFAULT_DURATION_BUCKETS",
    "DEFAULT_SIZE_BUCKETS",
    "ClientMetrics",
    "ServerMetrics",
    "flush_all",
    "mark_worker_dead",
    "metrics_http_response",
    "multiprocess_enabled",
    "prepare_multiprocess_dir",
]

#: Go's ``prometheus.DefBuckets`` (prometheus_client's default has three more).
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: Go goomerang's ``defBucketsForSizeBytes``.
DEFAULT_SIZE_BUCKETS: tuple[float, ...] = (
    10,
    20,
    40,
    80,
    160,
    320,
    640,
    1280,
    2560,
    5120,
    10240,
    50000,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Text format 0.0.4: what Go client_golang serves and every Prometheus reads.
# prometheus_client >= 0.22 calls 1.0.0 "latest"; older ones 0.0.4.
CONTENT_TYPE: str = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", CONTENT_TYPE_LATEST)

_GaugeMode = Literal["livemax", "livemin", "livesum"]

_INFLIGHT_HELP = "The time the message spent over the wire till received"
_RECEIVED_SIZE_HELP = "The size of the received messages in bytes"
_SENT_SIZE_HELP = "The size of the sent messages in bytes"
_SENT_TIME_HELP = "The time spent in during asynchronous message sending operation (buffer)"
_PROCESSING_HELP = "The time spent in message handler execution"

# registry -> metric name -> collector; weak so a dropped test registry goes away.
_SHARED: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = weakref.WeakKeyDictionary()


def _buckets(given: Sequence[float] | None, default: tuple[float, ...]) -> tuple[float, ...]:
    if given is None:
        return default
    out = tuple(float(b) for b in given)
    if not out or list(out) != sorted(out):
        raise ValueError(f"buckets must be a non-empty increasing sequence, got {list(given)!r}")
    return out


def _upper_bounds(h: Histogram) -> tuple[float, ...]:
    bounds = tuple(float(b) for b in getattr(h, "_upper_bounds", ()))
    return bounds[:-1] if bounds and bounds[-1] == float("inf") else bounds


class _Family:
    """Creates (or reuses) the collectors of one recorder on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.shared = _SHARED.setdefault(registry, {})

    def _get(self, name: str, kind: type, make: Callable[[], Any]) -> Any:
        found = self.shared.get(name)
        if found is None:
            # Registered by someone else (e.g. an earlier import of this module
            # under another name): prometheus_client keeps a private index.
            found = getattr(self.registry, "_names_to_collectors", {}).get(name)
        if found is not None:
            if not isinstance(found, kind):
                raise ValueError(
                    f"metric {name!r} is already registered as {type(found).__name__}, "
                    f"not {kind.__name__}; use another registry or namespace"
                )
            self.shared[name] = found
            return found
        made = make()
        self.shared[name] = made
        return made

    def histogram(
        self, name: str, help_: str, labels: Sequence[str], buckets: tuple[float, ...]
    ) -> Histogram:
        h: Histogram = self._get(
            name,
            Histogram,
            lambda: Histogram(name, help_, labels, registry=self.registry, buckets=buckets),
        )
        if _upper_bounds(h) != buckets:
            raise ValueError(
                f"histogram {name!r} already exists on this registry with buckets "
                f"{list(_upper_bounds(h))}, not {list(buckets)}; pass the same buckets "
                "or a separate registry"
            )
        return h

    def counter(self, name: str, help_: str, labels: Sequence[str] = ()) -> Counter:
        # prometheus_client appends "_total"; its index holds the base name too.
        c: Counter = self._get(
            name, Counter, lambda: Counter(name, help_, labels, registry=self.registry)
        )
        return c

    def gauge(self, name: str, help_: str, mode: _GaugeMode) -> Gauge:
        g: Gauge = self._get(
            name,
            Gauge,
            lambda: Gauge(name, help_, registry=self.registry, multiprocess_mode=mode),
        )
        return g


class _Children:
    """Label value -> child cache (``.labels()`` takes a lock and builds a tuple)."""

    __slots__ = ("_cache", "_parent")

    def __init__(self, parent: Histogram | Counter) -> None:
        self._parent = parent
        self._cache: dict[Any, Any] = {}

    def get(self, *labelvalues: str) -> Any:
        child = self._cache.get(labelvalues)
        if child is None:
            child = self._parent.labels(*labelvalues)
            self._cache[labelvalues] = child
        return child


class _Buffered:
    """Observations of one histogram child since the last flush."""

    __slots__ = ("bounds", "child", "counts", "n", "total")

    def __init__(self, child: Any, bounds: tuple[float, ...]) -> None:
        self.child = child
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        """Count ``value`` in its bucket (Go and prometheus_client: value <= upper bound)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1

    def flush(self) -> None:
        """Add the buffered counts and sum to the prometheus_client child."""
        counts, self.counts = self.counts, [0] * len(self.counts)
        total, self.total, self.n = self.total, 0.0, 0
        buckets = self.child._buckets
        for i, count in enumerate(counts):
            if count:
                buckets[i].inc(count)
        self.child._sum.inc(total)


class _Passthrough:
    """Stand-in for :class:`_Buffered` when a child does not keep ``_buckets``/``_sum``."""

    __slots__ = ("child",)
    n = 0  # never anything to flush

    def __init__(self, child: Any) -> None:
        self.child = child

    def observe(self, value: float) -> None:
        self.child.observe(value)


def _bufferable(child: Any, bounds: tuple[float, ...]) -> bool:
    """Whether this prometheus_client keeps a child's buckets as ``_buckets``/``_sum`` values."""
    buckets = getattr(child, "_buckets", None)
    return isinstance(buckets, list) and len(buckets) == len(bounds) + 1 and hasattr(child, "_sum")


class _BufferedChildren:
    """Label value -> :class:`_Buffered` of one histogram (one label)."""

    __slots__ = ("_bounds", "_cache", "_owner", "_parent")

    def __init__(self, parent: Histogram, owner: _Recorder) -> None:
        self._parent = parent
        self._owner = owner
        self._bounds = _upper_bounds(parent)
        self._cache: dict[str, _Buffered | _Passthrough] = {}

    def get(self, label: str) -> Any:
        buf = self._cache.get(label)
        if buf is None:
            child = self._parent.labels(label)
            if _bufferable(child, self._bounds):
                buf = _Buffered(child, self._bounds)
                self._owner._buffers.append(buf)
            else:
                buf = _Passthrough(child)
            self._cache[label] = buf
        return buf


class _Flusher:
    """A collector that yields nothing: collecting its registry flushes the recorders first."""

    def __init__(self) -> None:
        self.recorders: weakref.WeakSet[_Recorder] = weakref.WeakSet()

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        for recorder in list(self.recorders):
            recorder.flush_from_any_thread()
        return []


# registry -> its flusher (registered before any goomerang collector on it)
_FLUSHERS: weakref.WeakKeyDictionary[CollectorRegistry, _Flusher] = weakref.WeakKeyDictionary()


def _flusher(registry: CollectorRegistry) -> _Flusher:
    found = _FLUSHERS.get(registry)
    if found is None:
        found = _FLUSHERS[registry] = _Flusher()
        registry.register(found)
    return found


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
        self._subscribe.get(topic).inc()

    def unsubscribed(self, topic: str) -> None:
        """An unsubscribe command for ``topic`` was processed."""
        self._unsubscribe.get(topic).inc()

    def published(self, topic: str, kind: str) -> None:
        """A publish command of a ``kind`` message to ``topic`` was processed."""
        self._publish.get(topic, kind).inc()

    def connection_opened(self) -> None:
        """A WebSocket connection completed its handshake."""
        self.connections_open.inc()

    def connection_closed(self) -> None:
        """A WebSocket connection went away."""
        self.connections_open.dec()

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
        self._subscribe_cmd.get(topic).inc()

    def publish_cmd_sent(self, topic: str, kind: str) -> None:
        """A publish command of a ``kind`` message to ``topic`` was sent."""
        self._publish_cmd.get(topic, kind).inc()

    def unsubscribe_cmd_sent(self, topic: str) -> None:
        """An unsubscribe command for ``topic`` was sent."""
        self._unsubscribe_cmd.get(topic).inc()


# ---------------------------------------------------------------- exposition


def multiprocess_enabled() -> bool:
    """True when ``PROMETHEUS_MULTIPROC_DIR`` is set (scrapes merge every worker)."""
    return bool(os.environ.get(MULTIPROC_ENV))


def flush_all() -> None:
    """Write the buffered observations of every recorder in this process.

    ``metrics_http_response`` calls it; a scrape that bypasses the registry's
    own collection (a multiprocess merge, a ``restricted_registry`` filter)
    should too.
    """
    for flusher in list(_FLUSHERS.values()):
        flusher.collect()


def metrics_http_response(
    registry: CollectorRegistry | None = None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body answering a ``/metrics`` scrape.

    In multiprocess mode a fresh registry with ``MultiProcessCollector``
    merges every worker's files (``registry`` is ignored: a worker's own
    registry would count itself twice). Otherwise ``registry`` (default
    ``REGISTRY``) is exposed as is. Prometheus text format 0.0.4.
    """
    flush_all()  # this process's buffered observations, whatever registry they go to
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape, path=path)  # type: ignore[no-untyped-call]
        body = generate_latest(scrape)
    else:
        body = generate_latest(registry if registry is not None else REGISTRY)
    return 200, [("Content-Type", CONTENT_TYPE)], body


def prepare_multiprocess_dir(path: str | None = None) -> str:
    """Supervisor side: create or empty the metrics directory and turn multiprocess mode on.

    ``path`` defaults to ``PROMETHEUS_MULTIPROC_DIR`` when set, else a new
    temporary directory. The ``*.db`` files left by an earlier run are
    deleted (stale counters would otherwise be summed in); other files stay.
    Sets ``PROMETHEUS_MULTIPROC_DIR`` for this process and its children, and
    switches prometheus_client's
    value class so that metric objects created from now on, here or in
    workers forked from here, write to the directory. Call it before any
    worker creates a :class:`ServerMetrics`; objects created earlier stay
    process-local. Returns the directory.
    """
    if path is None:
        path = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="goomerang-metrics-")
    os.makedirs(path, exist_ok=True)
    for entry in os.listdir(path):
        if entry.endswith(".db"):
            os.remove(os.path.join(path, entry))
    os.environ[MULTIPROC_ENV] = path
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return path


def mark_worker_dead(pid: int) -> None:
    """Supervisor side: drop the ``live*`` gauges of a reaped worker.

    A no-op outside multiprocess mode. Counters and histograms of the
    worker stay in the sums.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
