"""The metric families of Go goomerang v0.3.0: names, help, buckets, shared per registry."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

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
