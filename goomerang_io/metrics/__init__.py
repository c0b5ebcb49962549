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

from .families import DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS
from .multiprocess import (
    CONTENT_TYPE,
    MULTIPROC_ENV,
    flush_all,
    mark_worker_dead,
    metrics_http_response,
    multiprocess_enabled,
    prepare_multiprocess_dir,
)
from .recorder import ClientMetrics, ServerMetrics

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_DURATION_BUCKETS",
    "DEFAULT_SIZE_BUCKETS",
    "MULTIPROC_ENV",
    "ClientMetrics",
    "ServerMetrics",
    "flush_all",
    "mark_worker_dead",
    "metrics_http_response",
    "multiprocess_enabled",
    "prepare_multiprocess_dir",
]
