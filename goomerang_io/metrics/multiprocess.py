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
)

from .exporter import MULTIPROC_ENV, flush_all
from .merge import DirectoryCollector
from .snapfile import mark_dead, remove_all

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_ENV",
    "flush_all",
    "mark_worker_dead",
    "metrics_http_response",
    "multiprocess_enabled",
    "prepare_multiprocess_dir",
]

# Text format 0.0.4: what Go client_golang serves and every Prometheus reads.
# prometheus_client >= 0.22 calls 1.0.0 "latest"; older ones 0.0.4.
CONTENT_TYPE: str = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", CONTENT_TYPE_LATEST)


def multiprocess_enabled() -> bool:
    """True when ``PROMETHEUS_MULTIPROC_DIR`` is set (scrapes merge every worker)."""
    return bool(os.environ.get(MULTIPROC_ENV))


def metrics_http_response(
    registry: CollectorRegistry | None = None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body answering a ``/metrics`` scrape.

    In multiprocess mode this process first writes its own values, then the
    answer merges every worker's snapshot file (goomerang's families) and
    every ``*.db`` file that prometheus_client's own multiprocess mode wrote
    there (the application's metrics, when it uses that mode);
    ``registry`` is ignored (a worker's own registry would count itself
    twice). Otherwise ``registry`` (default ``REGISTRY``) is exposed as is.
    Prometheus text format 0.0.4.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        flush_all()
        scrape = CollectorRegistry()
        scrape.register(DirectoryCollector(path))
        multiprocess.MultiProcessCollector(scrape, path=path)  # type: ignore[no-untyped-call]
        body = generate_latest(scrape)
    else:
        body = generate_latest(registry if registry is not None else REGISTRY)
    return 200, [("Content-Type", CONTENT_TYPE)], body


def prepare_multiprocess_dir(path: str | None = None) -> str:
    """Supervisor side: create or empty the metrics directory and turn multiprocess mode on.

    ``path`` defaults to ``PROMETHEUS_MULTIPROC_DIR`` when set, else a new
    temporary directory (removed when this process exits normally). The
    files an earlier run left (goomerang's ``*.gmm`` snapshot files,
    prometheus_client's ``*.db`` files) are deleted: stale counters would
    otherwise be summed in; other files stay. Sets
    ``PROMETHEUS_MULTIPROC_DIR`` for this process and its children. Call it
    before creating the recorders (a recorder created earlier stays
    process-local). Returns the directory.

    The application's own prometheus_client metrics join the merged scrape
    when prometheus_client runs in its multiprocess mode, which it decides
    when imported: set the variable in the environment before starting.
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
    remove_all(path)
    os.environ[MULTIPROC_ENV] = path
    return path


def _remove_own_dir(path: str, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)
        if os.environ.get(MULTIPROC_ENV) == path:
            del os.environ[MULTIPROC_ENV]


def mark_worker_dead(pid: int) -> None:
    """Supervisor side: drop the gauges of a reaped worker from the merged scrape.

    A no-op outside multiprocess mode. Counters and histograms of the
    worker stay in the sums (they are totals); its gauges (open
    connections, status, ...) no longer count. prometheus_client's own
    ``live*`` gauges of the process are dropped too.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        mark_dead(path, pid)
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
