"""The collector that exposes the recorders' plain counts, and writes this process's file.

Recorders keep their values in plain dicts and lists (no lock, no
prometheus_client object per message). One :class:`Exporter` per registry
and family prefix (``goomerang_server``, ``goomerang_client``) is registered
on the registry; collecting it sums the values of every recorder feeding it
(and of the recorders that have been garbage collected: counters never go
back). In multiprocess mode it also writes those sums to this process's
snapshot file (:mod:`.snapfile`), which a scrape in any process merges.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import struct
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from .families import Family
from .merge import Values, family_key, series_of, to_metrics
from .snapfile import SnapshotFile, file_name

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger("goomerang")

# One record of a worker's write plan: the live series, the values written last
# (updated in place), where they are in the file, their format.
_Step = tuple[list[float], list[float], int, struct.Struct]

# A recorder's values: family name -> label key -> values. The label key is
# the label value itself for one-label families (the hot path builds no
# tuple), a tuple otherwise (``()`` without labels).
Table = dict[str, dict[Any, list[float]]]


class Source(Protocol):
    """What the exporter needs of a recorder (``recorder._Recorder``)."""

    _values: Table
    _multiprocess: bool

    def _forked(self) -> None: ...


class Exporter(Collector):
    """Exposes the families of one prefix on one registry (see the module docstring)."""

    def __init__(self, prefix: str, families: Iterable[Family], eager: Iterable[str]) -> None:
        self.prefix = prefix
        self.families = {f.name: f for f in families}  # every family it may expose
        self.declared = {n: self.families[n] for n in eager}  # those exposed, in order
        self.settings: dict[str, float] = {}  # settable gauges: last value wins
        self._sources: weakref.WeakSet[Any] = weakref.WeakSet()
        self._tables: list[Table] = []  # the live recorders' tables
        self._retired: Values = {}
        self._dead: list[Table] = []
        self._lock = threading.RLock()
        self._file: SnapshotFile | None = None
        self._keys: dict[tuple[str, tuple[str, ...] | None], str] = {}
        self._failed = False
        self.directory = ""  # the metrics directory, when multiprocess
        self._plan: list[_Step] = []
        self._plan_settings: list[tuple[str, list[float], int, struct.Struct]] = []
        self._plan_shape: tuple[int, int, int, int] | None = None
        self.multiprocess = False  # fed by a recorder created in multiprocess mode
        self._shadow: dict[str, list[float]] = {}
        _EXPORTERS.add(self)

    # -------------------------------------------------------------- sources
    def add(self, source: Source) -> None:
        """Sum ``source``'s values in from now on (and keep them once it is collected)."""
        self._sources.add(source)
        self._tables.append(source._values)
        if source._multiprocess:
            self.multiprocess = True
            self.directory = os.environ.get(MULTIPROC_ENV, "")
        weakref.finalize(source, self._dead.append, source._values)

    def declare(self, family: Family) -> None:
        """Expose ``family`` (one that appears on first use) from now on."""
        if family.name not in self.declared:
            self.declared[family.name] = family

    # ----------------------------------------------------------- collection
    def describe(self) -> list[Metric]:
        """Every family this exporter may expose (the registry reserves their names)."""
        return to_metrics(self.families.values(), {})

    def collect(self) -> list[Metric]:
        return to_metrics(list(self.declared.values()), self.values())

    def values(self) -> Values:
        """The sums of every source's values (a copy), settable gauges included."""
        out: Values = {}
        with self._lock:
            while self._dead:  # fold what the collected recorders left, once
                dead = self._dead.pop()
                self._tables = [t for t in self._tables if t is not dead]
                _add_table(self._retired, dead)
            tables = list(self._tables)
            tables.append(self._retired)
            for table in tables:
                _add_table(out, table)
            for name, value in list(self.settings.items()):
                out[name] = {(): [value]}
        return out

    # --------------------------------------------------------- multiprocess
    def write(self) -> None:
        """Multiprocess mode: write the current sums to this process's snapshot file.

        Only the series that changed since the last write are written. A
        no-op when ``PROMETHEUS_MULTIPROC_DIR`` is not set, or was not when
        the recorders feeding this exporter were created.
        """
        if not self.multiprocess:
            return
        directory = self.directory
        with self._lock:
            try:
                f = self._file
                if f is None:  # the first write (of this process: a forked child drops it)
                    f = self._open(directory)
                self._write_changes(f)
            except OSError as exc:  # a metrics directory gone or full never breaks serving
                if not self._failed:
                    self._failed = True
                    log.warning("goomerang metrics: cannot write to %s: %s", directory, exc)

    def _write_changes(self, f: SnapshotFile) -> None:
        """Write what changed; with one recorder (a worker's usual case) by a prepared plan.

        The plan pairs each record with the recorder's live series, so that a
        write compares lists instead of summing tables. It is rebuilt when
        the shape changes (a new series or family, another recorder).
        """
        table: Table | None = None
        if len(self._tables) == 1 and not self._retired and not self._dead:
            table = self._tables[0]
        if table is None:
            self._plan_shape = None
            self._write_all(f)
            return
        shape = (id(table), len(self.declared), len(self.settings), sum(map(len, table.values())))
        if shape != self._plan_shape:
            self._write_all(f)
            self._plan = self._make_plan(f, table)
            self._plan_shape = shape
            return
        mm = f.buffer
        for vals, last, at, fmt in self._plan:
            if vals != last:
                fmt.pack_into(mm, at, *vals)
                last[:] = vals
        settings = self.settings
        for name, last, at, fmt in self._plan_settings:
            value = settings.get(name, 0.0)
            if value != last[0]:
                fmt.pack_into(mm, at, value)
                last[0] = value

    def _make_plan(self, f: SnapshotFile, table: Table) -> list[_Step]:
        """(live series, what was written last, offset, format) per record, after a _write_all."""
        plan: list[_Step] = []
        self._plan_settings = []
        keys, shadow = self._keys, self._shadow
        for fam in self.declared.values():
            if fam.settable:
                key = keys[fam.name, ()]
                self._plan_settings.append((fam.name, shadow[key], *f.slot(key)))
                continue
            for label, vals in list(table.get(fam.name, {}).items()):
                key = keys[fam.name, label if type(label) is tuple else (label,)]
                plan.append((vals, shadow[key], *f.slot(key)))
        return plan

    def _write_all(self, f: SnapshotFile) -> None:
        """Sum every source and write each series that changed (records added as needed)."""
        values = self.values()
        keys, shadow = self._keys, self._shadow
        for fam in list(self.declared.values()):
            meta = keys.get((fam.name, None))
            if meta is None:
                meta = keys[fam.name, None] = json.dumps(family_key(fam), sort_keys=True)
            if not f.has(meta):
                f.add(meta, ())
            for labels, vals in series_of(fam, values):
                key = keys.get((fam.name, labels))
                if key is None:
                    key = keys[fam.name, labels] = json.dumps([fam.name, list(labels)])
                if key not in shadow:
                    f.add(key, vals)
                elif shadow[key] == vals:
                    continue
                else:
                    f.put(key, vals)
                shadow[key] = vals

    def _open(self, directory: str) -> SnapshotFile:
        self._file = SnapshotFile(os.path.join(directory, file_name(os.getpid(), _token())))
        self._shadow = {}
        self._plan_shape = None
        return self._file

    def _forked(self) -> None:
        """In a forked child: the parent's file and lock are not ours; in multiprocess
        mode the child starts from zero (its file holds what it records, as
        prometheus_client's multiprocess mode does)."""
        self._lock = threading.RLock()
        self._file = None
        self._shadow = {}
        self._plan_shape = None
        if self.multiprocess:
            self._retired = {}
            self._dead = []
            self.settings.clear()
            self._tables = [s._values for s in list(self._sources)]
            for source in list(self._sources):
                source._forked()


def _add_table(out: Values, table: Table) -> None:
    for name, series in list(table.items()):
        dst = out.setdefault(name, {})
        for key, vals in list(series.items()):
            labels = key if type(key) is tuple else (key,)
            have = dst.get(labels)
            if have is None:
                dst[labels] = list(vals)
            else:
                for i, v in enumerate(vals):
                    have[i] += v


_COUNTER = itertools.count(1)


def _token() -> str:
    """Unique among this process's files; random so that a reused pid gets other names."""
    return f"{next(_COUNTER)}x{secrets.token_hex(6)}"


# every exporter of this process (written by flush_all, reset in forked children)
_EXPORTERS: weakref.WeakSet[Exporter] = weakref.WeakSet()

# registry -> prefix -> its exporter; weak so a dropped test registry goes away
_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Exporter]] = (
    weakref.WeakKeyDictionary()
)


def exporter_for(
    registry: CollectorRegistry, prefix: str, families: dict[str, Family], eager: Iterable[str]
) -> Exporter:
    """The exporter of ``prefix`` on ``registry``, registered there on first use.

    Raises ValueError when an existing one has other buckets, or when the
    registry already holds one of the names (another collector's).
    """
    shared = _BY_REGISTRY.setdefault(registry, {})
    found = shared.get(prefix)
    if found is not None:
        for fam in families.values():
            have = found.families.get(fam.name)
            if have is not None and have.buckets != fam.buckets:
                raise ValueError(
                    f"histogram {fam.name!r} already exists on this registry with buckets "
                    f"{list(have.buckets)}, not {list(fam.buckets)}; pass the same buckets "
                    "or a separate registry"
                )
        return found
    made = Exporter(prefix, families.values(), eager)
    try:
        registry.register(made)
    except ValueError as exc:
        raise ValueError(
            f"{prefix} metric names are already registered on this registry by another "
            f"collector ({exc}); use another registry or namespace"
        ) from exc
    shared[prefix] = made
    return made


def flush_all() -> None:
    """Multiprocess mode: write every exporter of this process to its snapshot file."""
    for exporter in list(_EXPORTERS):
        exporter.write()


def _after_fork_in_child() -> None:
    for exporter in list(_EXPORTERS):
        exporter._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
