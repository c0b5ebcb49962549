"""Medians over reps, ratios to the TCP floor of the same run, targets, and the one table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs import Job
from load import Result

Key = tuple[str, str, str]
UNITS = {"bcast": "deliv/s", "memory": "KiB/conn"}
TITLES = {
    "pipe": "1 pipelined echo",
    "rr_same": "2 sync rr same core",
    "rr_split": "2 sync rr split cores",
    "conc": "3 sync rr 100 conns",
    "bcast": "4 broadcast fan-out",
    "workers": "5 echo, N workers",
    "memory": "6 idle connections",
}


@dataclass
class Row:
    """The medians of one job's successful reps."""

    job: Job
    reps: int
    failed: int
    value: float | None  # msg/s, deliveries/s, or KiB per connection
    p50: float | None
    p99: float | None
    client_cpu: float | None
    steal: float | None
    errors: list[str]
    ratio: float | None = None
    target: str = ""
    verdicts: list[bool] = field(default_factory=list)


def _median(results: Sequence[Result], name: str) -> float | None:
    vals = [float(r[name]) for r in results if r.get(name) is not None and r[name] != -1]
    return statistics.median(vals) if vals else None


def aggregate(jobs: Sequence[Job], results: dict[Key, list[Result]]) -> dict[Key, Row]:
    """One Row per job, from the medians of its ok reps."""
    rows: dict[Key, Row] = {}
    for job in jobs:
        rs = results.get(job.key, [])
        ok = [r for r in rs if r.get("ok")]
        metric = "kib_per_conn" if job.mode == "idle" else "rate"
        rows[job.key] = Row(
            job=job,
            reps=len(ok),
            failed=len(rs) - len(ok),
            value=_median(ok, metric),
            p50=_median(ok, "p50_us"),
            p99=_median(ok, "p99_us"),
            client_cpu=_median(ok, "client_cpu_pct"),
            steal=_median(ok, "steal_pct"),
            errors=[str(r.get("error", "")) for r in rs if not r.get("ok")],
        )
    return rows


def _find(rows: dict[Key, Row], group: str, server: str, variant: str | None = None) -> Row | None:
    for (g, v, s), row in rows.items():
        if g == group and s == server and (variant is None or v == variant):
            return row
    return None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


ENGINES = ("goomerang", "goomerang-compiled")
"""Our servers in the table: ``serve`` on the pure engine and on the compiled build."""


def apply_ratios_and_targets(rows: dict[Key, Row]) -> list[tuple[str, bool | None]]:
    """Fill each row's ratio to the floor and its target text; return (target, PASS?) pairs."""
    for (group, variant, _), row in rows.items():
        ref_group, ref_variant = ("pipe", None) if group == "bcast" else (group, variant)
        floor = _find(rows, ref_group, "floor", ref_variant)
        if floor is not None:
            row.ratio = _div(row.value, floor.value)
    summary: list[tuple[str, bool | None]] = []

    def target(row: Row | None, text: str, ok: bool | None) -> None:
        if row is None:
            return
        verdict = "n/a" if ok is None else ("PASS" if ok else "MISS")
        row.target = f"{row.target}; {text} {verdict}" if row.target else f"{text} {verdict}"
        summary.append((f"{TITLES[row.job.group]} {row.job.server.name}: {text}", ok))

    def at_least(value: float | None, bound: float | None) -> bool | None:
        return None if value is None or bound is None else value >= bound

    gmr_pipe = _find(rows, "pipe", "goomerang")
    floor_pipe = _find(rows, "pipe", "floor")
    aio_pipe = _find(rows, "pipe", "aiohttp")
    if gmr_pipe is not None:
        fv = floor_pipe.value if floor_pipe else None
        target(gmr_pipe, ">=0.6x floor", at_least(gmr_pipe.value, fv and 0.6 * fv))
        av = aio_pipe.value if aio_pipe else None
        target(gmr_pipe, ">=1.2x aiohttp", at_least(gmr_pipe.value, av and 1.2 * av))
    gmr_rr = _find(rows, "rr_same", "goomerang")
    floor_rr = _find(rows, "rr_same", "floor")
    if gmr_rr is not None:
        bound = floor_rr.p50 if floor_rr else None
        ok = None if gmr_rr.p50 is None or bound is None else gmr_rr.p50 <= 2 * bound
        target(gmr_rr, "p50 <=2x floor p50", ok)
    gmr_b = _find(rows, "bcast", "goomerang", "500 rcv")
    if gmr_b is not None:
        fv = floor_pipe.value if floor_pipe else None
        target(gmr_b, ">=1x floor pipe msg/s", at_least(gmr_b.value, fv))
    one = next((r for r in rows.values() if r.job.extra.get("workers") == 1), None)
    for row in rows.values():
        w = row.job.extra.get("workers", 0)
        if w > 1:
            bound = 0.8 * w * one.value if one and one.value else None
            target(row, f">={0.8 * w:.1f}x w1", at_least(row.value, bound))
    # issue 13: request/response against the Go server and aiohttp (same run), for
    # both engines: the pure one and the compiled one (GOOMERANG_COMPILE=1)
    go_conc = _find(rows, "conc", "go")
    aio_conc = _find(rows, "conc", "aiohttp")
    go_rr = _find(rows, "rr_same", "go")
    for name in ENGINES:
        conc = _find(rows, "conc", name)
        if conc is not None:
            if go_conc is not None:
                target(conc, ">=1x go", at_least(conc.value, go_conc.value))
            target(conc, ">=1x aiohttp", at_least(conc.value, aio_conc and aio_conc.value))
        rr = _find(rows, "rr_same", name)
        if rr is not None and go_rr is not None:
            ok = None if rr.p50 is None or go_rr.p50 is None else rr.p50 <= go_rr.p50
            target(rr, "p50 <=go p50", ok)
    for row in rows.values():
        if row.job.group == "memory" and row.job.server.name == "goomerang" and row.job.n >= 10_000:
            ok = None if row.value is None else row.value <= 30.0
            target(row, "<=30 KiB/conn", ok)
    return summary


def _fmt(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def table(rows: dict[Key, Row], header: str) -> str:
    """The one table of the run, as text."""
    cols = (
        "row",
        "server",
        "config",
        "value",
        "unit",
        "p50 us",
        "p99 us",
        "x floor",
        "cli cpu%",
        "reps",
        "target",
    )
    lines: list[list[str]] = []
    for row in rows.values():
        job = row.job
        unit = UNITS.get(job.group, "msg/s")
        digits = 1 if job.mode == "idle" else 0
        reps = f"{row.reps}" + (f" ({row.failed} failed)" if row.failed else "")
        lines.append(
            [
                TITLES[job.group],
                job.server.name,
                job.variant,
                _fmt(row.value, digits),
                unit,
                _fmt(row.p50, 1),
                _fmt(row.p99, 1),
                "-" if row.ratio is None else f"{row.ratio:.2f}x",
                _fmt(row.client_cpu),
                reps,
                row.target,
            ]
        )
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(cols)]
    right = {3, 5, 6, 7, 8}

    def render(cells: Sequence[str]) -> str:
        out = [
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ]
        return "  ".join(out).rstrip()

    text = [header, render(cols), render(["-" * w for w in widths])]
    text += [render(line) for line in lines]
    return "\n".join(text)


def versus_text(rows: dict[Key, Row]) -> list[str]:
    """Our rows as ratios to the floor, aiohttp and the Go server of the same run (issue 13).

    Rates: ours / theirs (higher is better). The rr rows compare p50
    latencies: ours / theirs (lower is better).
    """
    out = ["ours / theirs, same run (rates: higher is better; rr p50: lower is better):"]
    for (group, variant, server), row in rows.items():
        if server not in ENGINES or group not in ("pipe", "rr_same", "rr_split", "conc", "bcast"):
            continue
        latency = group == "rr_same"
        mine = row.p50 if latency else row.value
        if mine is None:
            continue
        ref_group = "pipe" if group == "bcast" else group
        parts = []
        for other in ("floor", "aiohttp", "go"):
            # broadcast: the floor's pipelined rate; Go: its own broadcast row
            if group == "bcast" and other == "aiohttp":
                continue
            if other == "go":
                them = _find(rows, group, other, variant)
            else:
                them = _find(rows, ref_group, other, None if group == "bcast" else variant)
            if them is None and other == "go":
                if group != "bcast":
                    parts.append("go n/a")
                continue
            theirs = None if them is None else (them.p50 if latency else them.value)
            ratio = _div(mine, theirs)
            parts.append(f"{'-' if ratio is None else f'{ratio:.2f}x'} {other}")
        what = (
            "p50 " + _fmt(mine, 1) + " us"
            if latency
            else _fmt(mine) + " " + UNITS.get(group, "msg/s")
        )
        engine = "" if server == "goomerang" else f" ({server})"
        out.append(f"  {TITLES[group]} {variant}{engine}: {what} = {', '.join(parts)}")
    return out if len(out) > 1 else []


def metrics_text(rows: dict[Key, Row]) -> list[str]:
    """goomerang with --metrics against goomerang without, row by row, same run (issue 13).

    Rates: on / off (1.0 costs nothing; the target is >= 0.8). rr_same: p50
    on / off (the target is <= 1.25, the same 20% as a rate).
    """
    head = "metrics on / off, same run (rates: on/off, >=0.80 wanted; rr p50: on/off):"
    return _against_goomerang(rows, "goomerang+metrics", head)


def compiled_text(rows: dict[Key, Row]) -> list[str]:
    """serve on the mypyc-compiled engine against the pure one, row by row, same run."""
    head = "compiled engine / pure engine, same run (rates: higher is better; rr p50: lower):"
    return _against_goomerang(rows, "goomerang-compiled", head)


def _against_goomerang(rows: dict[Key, Row], name: str, head: str) -> list[str]:
    out = [head]
    for (group, variant, server), on in rows.items():
        if server != name:
            continue
        off = _find(rows, group, "goomerang", variant)
        if off is None:
            continue
        rate = _div(on.value, off.value)
        line = f"  {TITLES[group]} {variant}: {'-' if rate is None else f'{rate:.2f}x'} rate"
        if group.startswith("rr"):
            p50 = _div(on.p50, off.p50)
            line += f", {'-' if p50 is None else f'{p50:.2f}x'} p50"
        out.append(line)
    return out if len(out) > 1 else []


def errors_text(rows: dict[Key, Row]) -> list[str]:
    """One line per failed rep, for after the table."""
    out = []
    for row in rows.values():
        for err in row.errors:
            out.append(f"failed: {TITLES[row.job.group]} {row.job.server.name}: {err}")
    return out


def as_json(rows: dict[Key, Row]) -> list[dict[str, Any]]:
    """The table as plain data (written next to the raw results)."""
    return [
        {
            "group": r.job.group,
            "variant": r.job.variant,
            "server": r.job.server.name,
            "value": r.value,
            "p50_us": r.p50,
            "p99_us": r.p99,
            "ratio_to_floor": r.ratio,
            "client_cpu_pct": r.client_cpu,
            "steal_pct": r.steal,
            "reps": r.reps,
            "failed": r.failed,
            "target": r.target,
        }
        for r in rows.values()
    ]
