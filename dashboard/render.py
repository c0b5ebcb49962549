#!/usr/bin/env python3
"""The goomerang Grafana dashboard, and a PNG of the same panels from real scrapes.

One list of panels (:data:`PANELS`) makes both:

* ``python dashboard/render.py --write-dashboard`` writes
  ``dashboard/goomerang.json`` (Grafana 10; the Prometheus data source and
  the instances are dashboard variables), each query written in PromQL from
  the panel's spec;
* ``python dashboard/render.py --url http://127.0.0.1:9100/metrics
  [--url ...] --scrapes 40 --interval 1 --save-scrapes DIR`` scrapes the
  endpoints (a server's ``/metrics``, a metered client's) at a fixed
  interval, evaluates the same specs locally (rate over consecutive
  scrapes, histogram_quantile with Prometheus's linear interpolation, gauge
  aggregation) and draws ``dashboard/goomerang-dashboard.png`` with
  matplotlib; ``--from-dir DIR`` redraws from saved scrapes.

matplotlib is needed only for the PNG (the ``dashboard`` extra).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
SEL = '{instance=~"$instance"}'
STATUS_NAMES = {0: "NEW", 1: "RUNNING", 2: "CLOSING", 3: "CLOSED"}


# ------------------------------------------------------------------ the specs


@dataclass(frozen=True)
class Rate:
    """Per-second rate of a counter (or a histogram's ``_count``), summed by labels."""

    metric: str
    by: tuple[str, ...] = ()
    legend: str = ""

    def promql(self) -> str:
        by = f" by ({', '.join(self.by)})" if self.by else ""
        return f"sum{by} (rate({self.metric}{SEL}[$__rate_interval]))"


@dataclass(frozen=True)
class Quantile:
    """``histogram_quantile(q, ...)`` of a histogram, per label group."""

    q: float
    metric: str
    by: tuple[str, ...] = ("kind",)
    legend: str = ""

    def promql(self) -> str:
        by = ", ".join(("le", *self.by))
        return (
            f"histogram_quantile({self.q}, sum by ({by}) "
            f"(rate({self.metric}_bucket{SEL}[$__rate_interval])))"
        )


@dataclass(frozen=True)
class Gauge:
    """A gauge aggregated over series (sum, max or min), optionally per label group."""

    metric: str
    agg: str = "sum"
    legend: str = ""
    by: tuple[str, ...] = ()

    def promql(self) -> str:
        by = f" by ({', '.join(self.by)})" if self.by else ""
        return f"{self.agg}{by} ({self.metric}{SEL})"


Target = Rate | Quantile | Gauge


@dataclass(frozen=True)
class Panel:
    """One dashboard panel: a title, what it shows, and its Grafana look."""

    title: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "status", "updown"
    description: str = ""
    row: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


SV, CL = "goomerang_server_", "goomerang_client_"
P99, P50 = 0.99, 0.5

PANELS: tuple[Panel, ...] = (
    # -- server overview
    Panel(
        "Server status",
        (Gauge(SV + "status", "max", "{{instance}}", ("instance",)),),
        kind="status",
        row="Server",
        description="0 NEW, 1 RUNNING, 2 CLOSING, 3 CLOSED per instance "
        "(with workers: the most advanced live worker).",
    ),
    Panel(
        "Errors / s",
        (
            Rate(SV + "errors_total", legend="server"),
            Rate(CL + "errors_total", legend="client"),
        ),
        unit="ops",
        row="Server",
        description="What the error hooks reported, server and clients.",
    ),
    Panel(
        "Open connections",
        (Gauge(SV + "connections_open", "sum", "connections"),),
        row="Server",
        description="WebSocket connections open, summed over workers.",
    ),
    Panel(
        "Handler concurrency",
        (
            Gauge(SV + "concurrent_workers", "sum", "running handlers"),
            Gauge(SV + "config_max_concurrency", "sum", "max concurrency"),
        ),
        row="Server",
        description="Handlers running now against the configured maximum.",
    ),
    Panel(
        "Backplane up",
        (Gauge(SV + "backplane_up", "min", "backplane"),),
        kind="updown",
        row="Server",
        description="1 when every live worker has its backplane connected.",
    ),
    Panel(
        "Send time (p50, p99)",
        (
            Quantile(P50, SV + "message_sent_duration_seconds", legend="{{kind}} p50"),
            Quantile(P99, SV + "message_sent_duration_seconds", legend="{{kind}} p99"),
        ),
        unit="s",
        row="Server",
        description="Time to hand one message to the connection's transport.",
    ),
    # -- server messages
    Panel(
        "Messages received / s",
        (Rate(SV + "message_received_size_bytes_count", ("kind",), "{{kind}}"),),
        unit="ops",
        row="Server messages",
    ),
    Panel(
        "Messages sent / s",
        (Rate(SV + "message_sent_size_bytes_count", ("kind",), "{{kind}}"),),
        unit="ops",
        row="Server messages",
    ),
    Panel(
        "Received size (p50, p99)",
        (
            Quantile(P50, SV + "message_received_size_bytes", legend="{{kind}} p50"),
            Quantile(P99, SV + "message_received_size_bytes", legend="{{kind}} p99"),
        ),
        unit="bytes",
        row="Server messages",
    ),
    Panel(
        "Sent size (p50, p99)",
        (
            Quantile(P50, SV + "message_sent_size_bytes", legend="{{kind}} p50"),
            Quantile(P99, SV + "message_sent_size_bytes", legend="{{kind}} p99"),
        ),
        unit="bytes",
        row="Server messages",
    ),
    Panel(
        "Handler processing time (p50, p99)",
        (
            Quantile(P50, SV + "message_processing_duration_seconds", legend="{{kind}} p50"),
            Quantile(P99, SV + "message_processing_duration_seconds", legend="{{kind}} p99"),
        ),
        unit="s",
        row="Server messages",
    ),
    Panel(
        "In-flight time (p50, p99)",
        (
            Quantile(P50, SV + "message_received_inflight_duration_seconds", legend="{{kind}} p50"),
            Quantile(P99, SV + "message_received_inflight_duration_seconds", legend="{{kind}} p99"),
        ),
        unit="s",
        row="Server messages",
        description="Sender's creation stamp to receipt (clock skew included).",
    ),
    # -- broadcast and pub/sub
    Panel(
        "Broadcast time (p99)",
        (Quantile(P99, SV + "message_broadcast_sent_duration_seconds", legend="{{kind}}"),),
        unit="s",
        row="Broadcast and pub/sub",
    ),
    Panel(
        "Client broadcasts / s",
        (Rate(SV + "broadcast_client_total", ("message",), "{{message}}"),),
        unit="ops",
        row="Broadcast and pub/sub",
    ),
    Panel(
        "Pub/sub commands / s",
        (
            Rate(SV + "pubsub_publish_total", ("topic",), "publish {{topic}}"),
            Rate(SV + "pubsub_subscribe_total", ("topic",), "subscribe {{topic}}"),
            Rate(SV + "pubsub_unsubscribe_total", ("topic",), "unsubscribe {{topic}}"),
        ),
        unit="ops",
        row="Broadcast and pub/sub",
    ),
    # -- clients
    Panel(
        "Client status",
        (Gauge(CL + "status", "max", "{{instance}}", ("instance",)),),
        kind="status",
        row="Clients",
    ),
    Panel(
        "Client sends / s",
        (
            Rate(CL + "message_sent_duration_seconds_count", ("kind",), "send {{kind}}"),
            Rate(CL + "message_sent_sync_duration_seconds_count", ("kind",), "sync {{kind}}"),
            Rate(CL + "message_received_size_bytes_count", ("kind",), "received {{kind}}"),
        ),
        unit="ops",
        row="Clients",
    ),
    Panel(
        "Client sync round trip (p50, p99)",
        (
            Quantile(P50, CL + "message_sent_sync_duration_seconds", legend="{{kind}} p50"),
            Quantile(P99, CL + "message_sent_sync_duration_seconds", legend="{{kind}} p99"),
        ),
        unit="s",
        row="Clients",
    ),
    Panel(
        "Client handler concurrency",
        (
            Gauge(CL + "concurrent_workers", "sum", "running handlers"),
            Gauge(CL + "config_max_concurrency", "sum", "max concurrency"),
        ),
        row="Clients",
        description="Summed over clients.",
    ),
    Panel(
        "Client processing and in-flight time (p99)",
        (
            Quantile(P99, CL + "message_processing_duration_seconds", legend="processing {{kind}}"),
            Quantile(
                P99, CL + "message_received_inflight_duration_seconds", legend="in-flight {{kind}}"
            ),
        ),
        unit="s",
        row="Clients",
    ),
    Panel(
        "Client message size (p99)",
        (
            Quantile(P99, CL + "message_sent_size_bytes", legend="sent {{kind}}"),
            Quantile(P99, CL + "message_received_size_bytes", legend="received {{kind}}"),
        ),
        unit="bytes",
        row="Clients",
    ),
    Panel(
        "Client commands / s",
        (
            Rate(CL + "broadcast_cmd_sent_total", (), "broadcast"),
            Rate(CL + "pubsub_publish_cmd_sent_total", (), "publish"),
            Rate(CL + "pubsub_subscribe_cmd_sent_total", (), "subscribe"),
            Rate(CL + "pubsub_unsubscribe_cmd_sent_total", (), "unsubscribe"),
        ),
        unit="ops",
        row="Clients",
    ),
)


# ------------------------------------------------------------ Grafana output


def _target_json(t: Target, ref: str) -> dict[str, Any]:
    return {
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "expr": t.promql(),
        "legendFormat": t.legend or "__auto",
        "range": True,
        "refId": ref,
    }


def _panel_json(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    refs = "ABCDEFGH"
    panel: dict[str, Any] = {
        "id": pid,
        "title": p.title,
        "description": p.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "targets": [_target_json(t, refs[i]) for i, t in enumerate(p.targets)],
    }
    if p.kind in ("status", "updown"):
        names = STATUS_NAMES if p.kind == "status" else {0: "DOWN", 1: "UP"}
        colors = (
            {0: "blue", 1: "green", 2: "orange", 3: "red"}
            if p.kind == "status"
            else {0: "red", 1: "green"}
        )
        panel["type"] = "state-timeline"
        panel["fieldConfig"] = {
            "defaults": {
                "color": {"mode": "thresholds"},
                "mappings": [
                    {
                        "type": "value",
                        "options": {
                            str(v): {"text": n, "color": colors[v], "index": v}
                            for v, n in names.items()
                        },
                    }
                ],
                "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]},
            },
            "overrides": [],
        }
        panel["options"] = {"mergeValues": True, "showValue": "auto", "rowHeight": 0.9}
    else:
        panel["type"] = "timeseries"
        panel["fieldConfig"] = {
            "defaults": {
                "unit": p.unit,
                "min": 0,
                "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10},
            },
            "overrides": [],
        }
        panel["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    return panel


def dashboard_json() -> dict[str, Any]:
    """The Grafana dashboard for :data:`PANELS`."""
    panels: list[dict[str, Any]] = []
    y, pid, row, col = 0, 1, None, 0
    for p in PANELS:
        if p.row != row:
            if col:
                y += 8
            panels.append(
                {
                    "id": pid,
                    "type": "row",
                    "title": p.row,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                    "panels": [],
                }
            )
            pid, y, row, col = pid + 1, y + 1, p.row, 0
        panels.append(_panel_json(p, pid, col * 8, y))
        pid += 1
        col += 1
        if col == 3:
            col, y = 0, y + 8
    return {
        "title": "goomerang",
        "uid": "goomerang-python",
        "description": "goomerang server and client metrics "
        "(metric names shared with Go goomerang v0.3.0).",
        "tags": ["goomerang", "websocket", "protobuf"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "time": {"from": "now-15m", "to": "now"},
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                },
                {
                    "name": "instance",
                    "label": "Instance",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "definition": "label_values(instance)",
                    "query": {
                        "query": 'label_values({__name__=~"goomerang_(server|client)_status"}, '
                        "instance)",
                        "refId": "instances",
                    },
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                    "sort": 1,
                    "hide": 0,
                },
            ]
        },
        "panels": panels,
    }


# ------------------------------------------------------------ local evaluation

Labels = frozenset[tuple[str, str]]


@dataclass
class Scrape:
    """One scrape: when, and every sample (name, labels) -> value."""

    t: float
    samples: dict[tuple[str, Labels], float]


def parse_scrape(t: float, text: str) -> Scrape:
    """Parse Prometheus text exposition into a :class:`Scrape`."""
    samples: dict[tuple[str, Labels], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return Scrape(t, samples)


def merge(scrapes: Iterable[tuple[str, Scrape]], t: float) -> Scrape:
    """Several endpoints scraped at one moment, as one scrape.

    Each sample gets an ``instance`` label (the endpoint's host:port), as
    Prometheus adds it to every scraped target.
    """
    out: dict[tuple[str, Labels], float] = {}
    for instance, s in scrapes:
        for (name, labels), v in s.samples.items():
            out[(name, labels | {("instance", instance)})] = v
    return Scrape(t, out)


def _instance(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _series(s: Scrape, name: str) -> Iterable[tuple[dict[str, str], float]]:
    for (n, labels), v in s.samples.items():
        if n == name:
            yield dict(labels), v


def _group(labels: dict[str, str], by: Sequence[str]) -> tuple[str, ...]:
    return tuple(labels.get(b, "") for b in by)


def _increase(a: float | None, b: float) -> float:
    if a is None or b < a:  # new series, or a counter reset (worker restart)
        return b if a is not None else 0.0
    return b - a


def _legend(template: str, by: Sequence[str], key: tuple[str, ...]) -> str:
    text = template or ",".join(key) or "value"
    for b, v in zip(by, key, strict=True):
        text = text.replace(
            "{{" + b + "}}", v.rsplit(".", 1)[-1] if b in ("kind", "message") else v
        )
    return text


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus ``histogram_quantile`` on cumulative (le, count) pairs."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][0] != math.inf:
        return math.nan
    total = buckets[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == math.inf:
                return prev_le  # the highest finite bound, as Prometheus does
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return math.nan


def evaluate(
    target: Target, scrapes: Sequence[Scrape]
) -> dict[str, tuple[list[float], list[float]]]:
    """Legend -> (times, values) of one target over the scrapes."""
    out: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    if isinstance(target, Gauge):
        aggregate: dict[str, Callable[[list[float]], float]] = {
            "sum": lambda v: float(sum(v)),
            "max": max,
            "min": min,
        }
        fn = aggregate[target.agg]
        for s in scrapes:
            grouped: dict[tuple[str, ...], list[float]] = defaultdict(list)
            for lab, v in _series(s, target.metric):
                grouped[_group(lab, target.by)].append(v)
            for key, vals in sorted(grouped.items()):
                ts, vs = out[_legend(target.legend, target.by, key)]
                ts.append(s.t)
                vs.append(float(fn(vals)))
        return dict(out)
    for a, b in itertools.pairwise(scrapes):
        dt = b.t - a.t
        if dt <= 0:
            continue
        if isinstance(target, Rate):
            before = {frozenset(lab.items()): v for lab, v in _series(a, target.metric)}
            acc: dict[tuple[str, ...], float] = defaultdict(float)
            for lab, v in _series(b, target.metric):
                acc[_group(lab, target.by)] += _increase(before.get(frozenset(lab.items())), v)
            for key, inc in acc.items():
                ts, vs = out[_legend(target.legend, target.by, key)]
                ts.append(b.t)
                vs.append(inc / dt)
        else:
            name = target.metric + "_bucket"
            before = {frozenset(lab.items()): v for lab, v in _series(a, name)}
            groups: dict[tuple[str, ...], dict[float, float]] = defaultdict(
                lambda: defaultdict(float)
            )
            for lab, v in _series(b, name):
                inc = _increase(before.get(frozenset(lab.items())), v)
                groups[_group(lab, target.by)][float(lab["le"])] += inc
            for key, by_le in groups.items():
                value = bucket_quantile(target.q, list(by_le.items()))
                if not math.isnan(value):
                    ts, vs = out[_legend(target.legend, target.by, key)]
                    ts.append(b.t)
                    vs.append(value)
    return dict(out)


# ------------------------------------------------------------------- drawing


def render(scrapes: Sequence[Scrape], out: Path, title: str) -> None:
    """Draw every panel of :data:`PANELS` from ``scrapes`` into ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = scrapes[0].t
    cols = 3
    rows = math.ceil(len(PANELS) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 6.2, rows * 3.1), squeeze=False)
    fig.patch.set_facecolor("#111217")
    for ax, panel in zip(axes.flat, PANELS, strict=False):
        ax.set_facecolor("#181b1f")
        ax.tick_params(colors="#ccccdc", labelsize=7)
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        ax.grid(color="#2c3235", linewidth=0.5)
        ax.set_title(f"{panel.row} · {panel.title}", color="#ccccdc", fontsize=9, loc="left")
        drawn = 0
        for target in panel.targets:
            for legend, (ts, vs) in sorted(evaluate(target, scrapes).items()):
                rel = [t - t0 for t in ts]
                if panel.kind in ("status", "updown"):
                    ax.step(rel, vs, where="post", label=legend, linewidth=1.5)
                else:
                    ax.plot(rel, vs, label=legend, linewidth=1.2)
                drawn += 1
        if panel.kind == "status":
            ax.set_yticks(list(STATUS_NAMES), list(STATUS_NAMES.values()))
            ax.set_ylim(-0.3, 3.3)
        elif panel.kind == "updown":
            ax.set_yticks([0, 1], ["DOWN", "UP"])
            ax.set_ylim(-0.2, 1.2)
        else:
            ax.set_ylim(bottom=0)
            ax.set_ylabel(panel.unit, color="#8e8e8e", fontsize=7)
        if drawn:
            ax.legend(fontsize=6, loc="upper left", facecolor="#181b1f", labelcolor="#ccccdc")
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="#8e8e8e")
        ax.set_xlabel("seconds", color="#8e8e8e", fontsize=7)
    for ax in list(axes.flat)[len(PANELS) :]:
        ax.set_visible(False)
    fig.suptitle(title, color="#ccccdc", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, facecolor=fig.get_facecolor())
    plt.close(fig)


# ----------------------------------------------------------------------- CLI


def _fetch(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read()
    return body.decode()


def collect(urls: Sequence[str], scrapes: int, interval: float, save: Path | None) -> list[Scrape]:
    """Scrape every URL ``scrapes`` times, ``interval`` seconds apart."""
    out: list[Scrape] = []
    for i in range(scrapes):
        t = time.time()
        texts = [_fetch(u, timeout=max(interval, 2.0)) for u in urls]
        parts = [(_instance(u), parse_scrape(t, x)) for u, x in zip(urls, texts, strict=True)]
        out.append(merge(parts, t))
        if save is not None:
            at = save / f"{t:.3f}"
            at.mkdir(parents=True, exist_ok=True)
            for u, x in zip(urls, texts, strict=True):
                (at / f"{_instance(u).replace(':', '_')}.prom").write_text(x)
        if i + 1 < scrapes:
            time.sleep(max(0.0, interval - (time.time() - t)))
    return out


def load(directory: Path) -> list[Scrape]:
    """Scrapes saved by ``--save-scrapes``.

    One folder per moment (named by unix time), one file per endpoint in it.
    """
    moments = sorted((p for p in directory.iterdir() if p.is_dir()), key=lambda p: float(p.name))
    out = []
    for m in moments:
        t = float(m.name)
        parts = [
            (f.stem.replace("_", ":"), parse_scrape(t, f.read_text()))
            for f in sorted(m.glob("*.prom"))
        ]
        out.append(merge(parts, t))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-dashboard", action="store_true", help="write goomerang.json")
    ap.add_argument("--dashboard", type=Path, default=HERE / "goomerang.json")
    ap.add_argument("--url", action="append", default=[], help="a /metrics URL (repeatable)")
    ap.add_argument("--scrapes", type=int, default=30)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes")
    ap.add_argument("--save-scrapes", type=Path, help="keep the raw scrapes here")
    ap.add_argument("--from-dir", type=Path, help="render saved scrapes instead of scraping")
    ap.add_argument("--out", type=Path, default=HERE / "goomerang-dashboard.png")
    ap.add_argument("--title", default="goomerang (rendered from real scrapes)")
    args = ap.parse_args(argv)

    if args.write_dashboard:
        args.dashboard.write_text(json.dumps(dashboard_json(), indent=2) + "\n")
        print(f"wrote {args.dashboard}")
        if not args.url and not args.from_dir:
            return 0
    if args.from_dir:
        scrapes = load(args.from_dir)
    elif args.url:
        if args.scrapes < 2:
            ap.error("--scrapes must be at least 2 (rates need two scrapes)")
        scrapes = collect(args.url, args.scrapes, args.interval, args.save_scrapes)
    else:
        ap.error("give --url, --from-dir or --write-dashboard")
    if len(scrapes) < 2:
        print("need at least two scrapes", file=sys.stderr)
        return 2
    render(scrapes, args.out, args.title)
    print(f"wrote {args.out} from {len(scrapes)} scrapes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
