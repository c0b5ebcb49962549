"""Run the benchmarks of issue 7 end to end and print one table.

usage: run_all.py [--quick] [--reps K] [--only ROWS] [--workers N,...]
                  [--server-cpu C] [--client-cpu C] [--coalesce-us U] [--out DIR]

Rows: pipe, rr, conc, bcast, workers, memory (``--only`` also takes server
names: floor, goomerang, picows, aiohttp, websockets; the floor is always
measured, every figure is also given as a ratio to it). Each rep starts a
fresh server for every job, and the reps of compared servers interleave.
A run whose steal_pct exceeds ``--max-steal`` is repeated (at most twice).
Raw results go to benchmarks/out/ (ignored by git).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import time
from pathlib import Path

from gmrbuild import ensure_gmrload
from goref import HOW, find_goref
from jobs import Job, run_job
from load import Result
from plan import Placement, build
from procs import raise_nofile, stop_all
from report import (
    aggregate,
    apply_ratios_and_targets,
    as_json,
    compiled_text,
    errors_text,
    metrics_text,
    table,
    versus_text,
)
from servers import go_server

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 rep (smoke test)")
    ap.add_argument("--reps", type=int, default=None, help="reps per job (default 3; quick 1)")
    ap.add_argument("--only", default=None, help="comma list of rows and/or servers")
    ap.add_argument("--workers", default="1,2", help="worker counts for row 5 (e.g. 1,2,4)")
    cpus = sorted(os.sched_getaffinity(0))
    ap.add_argument("--server-cpu", type=int, default=cpus[0])
    ap.add_argument("--client-cpu", type=int, default=cpus[1] if len(cpus) > 1 else cpus[0])
    ap.add_argument("--coalesce-us", type=int, default=1000, help="gmrload bcast receivers")
    ap.add_argument("--max-steal", type=float, default=5.0, help="rerun above this steal%%")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument(
        "--goref",
        default=None,
        help="folder of the built Go refserver (tools/goref/build.sh DIR); also env GOREF_DIR",
    )
    return ap.parse_args(argv)


def measure(job: Job, binary: Path, max_steal: float, log: bool) -> Result:
    """Run a job, repeating it (at most twice) when steal is high or it failed."""
    result: Result = {}
    for attempt in range(3):
        result = run_job(job, binary)
        if log:
            shown = result.get("rate", result.get("kib_per_conn"))
            print(
                f"  {job.group:8} {job.variant:16} {job.server.name:14} ok={result.get('ok')} "
                f"value={shown} cli={result.get('client_cpu_pct')} "
                f"steal={result.get('steal_pct')} {result.get('error', '')}",
                file=sys.stderr,
                flush=True,
            )
        result["attempt"] = attempt + 1
        steal = float(result.get("steal_pct", 0.0) or 0.0)
        if result.get("ok") and steal <= max_steal:
            return result
        if attempt < 2:
            why = f"steal {steal:.1f}%" if result.get("ok") else "failed"
            result.setdefault("notes", []).append(f"repeated: {why}")
    return result


def main(argv: list[str] | None = None) -> int:
    """Build gmrload, run every selected job per rep, print the table."""
    args = parse_args(argv)
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    workers = sorted({int(w) for w in args.workers.split(",") if w.strip()} | {1})
    cpus = sorted(os.sched_getaffinity(0))
    place = Placement(cpus, args.server_cpu, args.client_cpu)
    raise_nofile()
    atexit.register(stop_all)
    binary = ensure_gmrload(verbose=not args.quiet)
    goref = find_goref(args.goref)
    go = go_server(goref) if goref is not None else None
    jobs = build(args.only, args.quick, place, workers, args.coalesce_us, go)
    results: dict[tuple[str, str, str], list[Result]] = {}
    start = time.monotonic()
    for rep in range(reps):
        if not args.quiet:
            print(f"rep {rep + 1}/{reps}", file=sys.stderr, flush=True)
        for job in jobs:
            results.setdefault(job.key, []).append(
                measure(job, binary, args.max_steal, not args.quiet)
            )
    elapsed = time.monotonic() - start
    rows = aggregate(jobs, results)
    summary = apply_ratios_and_targets(rows)
    header = (
        f"goomerang benchmarks: {reps} rep(s), medians; {len(cpus)} CPUs; server on CPU "
        f"{place.server}, client on CPU {place.client} (rr_same: both on {place.client}); "
        f"128-byte messages; bcast receivers coalesce {args.coalesce_us} us; {elapsed:.0f} s"
    )
    print(table(rows, header))
    for line in versus_text(rows):
        print(line)
    if go is None:
        print(f"Go server: n/a ({HOW})")
    for line in [*metrics_text(rows), *compiled_text(rows)]:
        print(line)
    for line in errors_text(rows):
        print(line)
    passed = sum(1 for _, ok in summary if ok)
    if summary:
        print(f"targets: {passed} PASS, {len(summary) - passed} MISS or n/a of {len(summary)}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw = {"/".join(k): v for k, v in results.items()}
    (args.out / f"run-{stamp}.json").write_text(
        json.dumps({"header": header, "table": as_json(rows), "raw": raw}, indent=1)
    )
    ok_rows = sum(1 for r in rows.values() if r.value is not None)
    return 0 if ok_rows == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
