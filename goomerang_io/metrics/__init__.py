"""Prometheus metrics with the names, types, labels and help of Go goomerang v0.3.0.

Two recorders, :class:`ServerMetrics` and :class:`ClientMetrics`, own the
metric families; the server and the client call their methods (one method
per event) and never touch prometheus_client directly. Exposed names equal
the Go ones: histograms keep their names (``*_seconds``, ``*_bytes``, label
``kind``), counters are created without the ``_total`` suffix because
prometheus_client appends it (a counter family ``goomerang_server_errors`` is
exposed as ``goomerang_server_errors_total``). Beside the Go families the
server has two of ours: ``goomerang_server_connections_open`` and
``goomerang_server_backplane_up`` (exposed once a backplane reported).

Registries. By default every recorder registers in prometheus_client's
default ``REGISTRY``. Several recorders on one registry (a test suite that
starts many servers in one process) feed the same collector, which sums
them, instead of failing with "Duplicated timeseries"; they must ask for the
same buckets.

Recording (the hot path). A recorder keeps its values in plain Python dicts
and lists: an observation is a bucket count and a sum added to, no lock, no
prometheus_client object. One collector per registry and prefix (only
prometheus_client's public ``Collector`` and ``*MetricFamily`` classes)
exposes them when the registry is collected, summed over the recorders
that feed it (a recorder that has been garbage collected leaves its counts
behind: counters never go back). A collection from another thread reads
the values as they are (an observation may show in the count before its
sum). A recorder records on one thread: endpoints running on different
threads each need their own recorder (they may share a registry).

Multiprocess mode (``goomerang serve --workers N``). Each worker writes its
values to a memory-mapped file of its own in ``PROMETHEUS_MULTIPROC_DIR``
(the format is ours, :mod:`goomerang_io.metrics.snapfile`), at the end of
every event-loop iteration that recorded something (only the series that
changed) and before it answers a scrape; any worker answering ``/metrics``
merges every file. Ordering, which the supervisor follows:

1. supervisor: :func:`prepare_multiprocess_dir` (creates or empties the
   directory and sets the variable);
2. supervisor: create the recorders, fork the workers (a forked worker
   starts from zero and writes a file of its own); or workers started
   afresh create theirs with the variable set;
3. supervisor: :func:`mark_worker_dead` with the pid of every worker it
   reaps, so that the gauges of the dead worker no longer count;
4. any process: :func:`metrics_http_response` answers a scrape.

Merging across workers: counters and histograms are summed over every
worker, dead ones included (they are totals). Gauges count the live workers
only, each by its mode:

* ``status``: ``livemax``, one series like Go, showing the most advanced
  live state (a worker that is CLOSING shows over the RUNNING ones);
* ``concurrent_workers``, ``config_max_concurrency``, ``connections_open``:
  ``livesum``, the totals of the live workers (busy handlers against the
  total allowed; open connections of the whole server);
* ``backplane_up``: ``livemin``, 0 as soon as one live worker has lost
  its backplane (what an alert wants).

In one process every gauge is the plain value of the process.
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
