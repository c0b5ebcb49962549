"""Multiprocess mode and the scrape: the metrics directory, dead workers, the merged answer."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    exposition,
    generate_latest,
    multiprocess,
    values,
)

from .buffer import _FLUSHERS

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


# Text format 0.0.4: what Go client_golang serves and every Prometheus reads.
# prometheus_client >= 0.22 calls 1.0.0 "latest"; older ones 0.0.4.
CONTENT_TYPE: str = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", CONTENT_TYPE_LATEST)


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
        path = os.environ.get(MULTIPROC_ENV)
        if not path:
            # ours: removed when this process exits normally (workers leave by os._exit)
            path = tempfile.mkdtemp(prefix="goomerang-metrics-")
            atexit.register(_remove_own_dir, path, os.getpid())
    os.makedirs(path, exist_ok=True)
    for entry in os.listdir(path):
        if entry.endswith(".db"):
            os.remove(os.path.join(path, entry))
    os.environ[MULTIPROC_ENV] = path
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return path


def _remove_own_dir(path: str, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)
        if os.environ.get(MULTIPROC_ENV) == path:
            del os.environ[MULTIPROC_ENV]


def mark_worker_dead(pid: int) -> None:
    """Supervisor side: drop the ``live*`` gauges of a reaped worker.

    A no-op outside multiprocess mode. Counters and histograms of the
    worker stay in the sums.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
