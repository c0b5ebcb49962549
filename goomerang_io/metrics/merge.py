"""Plain values to prometheus_client metric families, and the merge of every worker's file.

``Values`` maps a family name to its series: label values (a tuple, in the
family's label order) to the series' values. A histogram series holds a
count per bucket (not cumulative; the ``+Inf`` bucket last) and then the
sum; a counter or gauge series holds one value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .families import Family, go_float
from .snapfile import live_files, read_records

Values = dict[str, dict[tuple[str, ...], list[float]]]


def series_of(family: Family, values: Values) -> Iterator[tuple[tuple[str, ...], list[float]]]:
    """The series of ``family``; an unlabelled counter or gauge with none shows 0 (as Go's)."""
    series = values.get(family.name)
    if series:
        yield from series.items()
    elif not family.labels and family.type != "histogram":
        yield (), [0.0]


def to_metrics(families: Iterable[Family], values: Values) -> list[Metric]:
    """One prometheus_client metric family per family, with its series from ``values``."""
    out: list[Metric] = []
    for fam in families:
        metric: Any
        if fam.type == "histogram":
            metric = HistogramMetricFamily(fam.name, fam.help, labels=fam.labels)
            les = [*(go_float(b) for b in fam.buckets), "+Inf"]
            for labels, vals in series_of(fam, values):
                cumulative = 0.0
                buckets = []
                for le, count in zip(les, vals, strict=False):
                    cumulative += count
                    buckets.append((le, cumulative))
                metric.add_metric(labels, buckets, vals[-1])
        elif fam.type == "counter":
            metric = CounterMetricFamily(fam.name, fam.help, labels=fam.labels)
            for labels, vals in series_of(fam, values):
                metric.add_metric(labels, vals[0])
        else:
            metric = GaugeMetricFamily(fam.name, fam.help, labels=fam.labels)
            for labels, vals in series_of(fam, values):
                metric.add_metric(labels, vals[0])
        out.append(metric)
    return out


def family_key(family: Family) -> dict[str, Any]:
    """The JSON object that describes ``family`` in a snapshot file."""
    return {
        "name": family.name,
        "type": family.type,
        "help": family.help,
        "labels": list(family.labels),
        "buckets": list(family.buckets),
        "mode": family.mode,
    }


def family_from_key(key: dict[str, Any]) -> Family | None:
    """The family a snapshot file describes; None when the object is not one of ours."""
    try:
        name, type_, help_ = key["name"], key["type"], key["help"]
        labels = tuple(str(x) for x in key["labels"])
        buckets = tuple(float(b) for b in key["buckets"])
        mode = key["mode"]
    except (KeyError, TypeError, ValueError):
        return None
    if (
        not isinstance(name, str)
        or not isinstance(help_, str)
        or type_ not in ("histogram", "counter", "gauge")
        or mode not in ("livesum", "livemax", "livemin")
    ):
        return None
    return Family(name, type_, help_, labels, buckets, mode)


def _combine(mode: str, have: list[float], vals: Iterable[float]) -> None:
    for i, v in enumerate(vals):
        if mode == "livemax":
            have[i] = max(have[i], v)
        elif mode == "livemin":
            have[i] = min(have[i], v)
        else:
            have[i] += v


def merge_files(directory: str) -> tuple[list[Family], Values]:
    """Every family and the merged series of the snapshot files in ``directory``.

    Counters and histograms: summed over every file, dead processes' too
    (they are totals). Gauges: combined by their mode over the live
    processes' files only. A series whose family is not described in its
    file, or whose value count does not fit the family, is skipped.
    """
    families: dict[str, Family] = {}
    merged: Values = {}
    for path, live in live_files(directory):
        own: dict[str, Family] = {}
        for key, vals in read_records(path):
            if isinstance(key, dict):
                fam = family_from_key(key)
                if fam is not None:
                    own[fam.name] = families.setdefault(fam.name, fam)
                continue
            if not (isinstance(key, list) and len(key) == 2 and isinstance(key[1], list)):
                continue
            fam = own.get(str(key[0]))
            if fam is None or len(vals) != fam.width() or len(key[1]) != len(fam.labels):
                continue
            if fam.type == "gauge" and not live:
                continue
            labels = tuple(str(x) for x in key[1])
            series = merged.setdefault(fam.name, {})
            have = series.get(labels)
            if have is None:
                series[labels] = list(vals)
            else:
                _combine(fam.mode if fam.type == "gauge" else "sum", have, vals)
    return list(families.values()), merged


class DirectoryCollector(Collector):
    """A collector exposing the merge of the snapshot files in one directory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        families, values = merge_files(self.directory)
        # an unlabelled gauge no live process holds has no sample (not a made-up 0)
        present = {
            f.name: values.get(f.name, {})
            for f in families
            if f.type != "gauge" or f.name in values
        }
        return to_metrics((f for f in families if f.name in present), present)
