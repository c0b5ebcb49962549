"""Per-bucket counts kept in plain lists, written to prometheus_client once per loop iteration."""

from __future__ import annotations

import weakref
from bisect import bisect_left
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Histogram,
)

from .families import _upper_bounds


class _Owner(Protocol):
    """What the buffers need of a recorder (``recorder._Recorder``)."""

    _buffers: list[Any]

    def flush_from_any_thread(self) -> None: ...


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

    def __init__(self, parent: Histogram, owner: _Owner) -> None:
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
        self.recorders: weakref.WeakSet[_Owner] = weakref.WeakSet()

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
