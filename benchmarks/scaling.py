"""Scaling with worker processes (issue 4): echo and broadcast msg/s for 1..N workers.

usage: scaling.py [--max-workers N] [--server-cores 0-7] [--clients-cores 8-15]
                  [--clients-per-worker 4] [--bcast-clients P] [--receivers K]
                  [--reps R] [--max-seconds S] [--quick]

For every worker count w = 1..N it starts a fresh ``python -m goomerang_io
serve --workers w`` pinned to the first w server cores, then loads it with
several gmrload processes in parallel, pinned round-robin over the client
cores, and sums their rates:

* echo: ``clients-per-worker * N`` pipelined clients (the same set for every
  w, window 250 each), so SO_REUSEPORT spreads the same connections over
  however many workers there are;
* broadcast: ``--bcast-clients`` processes, each one sender plus K/P
  receivers; every broadcast reaches every connection (through the
  backplane across workers), so each process also receives the others'
  broadcasts: the summed rate is all deliveries per second.

It prints one table with the speed-up over one worker, and stops starting
new runs once ``--max-seconds`` (default 230) is spent. gmrload is built
from benchmarks/gmrload/gmrload.c when missing or stale.
"""

from __future__ import annotations

import argparse
import atexit
import os
import statistics
import sys
import time

from gmrbuild import ensure_gmrload
from jobs import Job, run_job
from load import Result
from procs import raise_nofile, stop_all
from servers import goomerang


def parse_cpus(text: str) -> list[int]:
    """``"0-3,8"`` -> ``[0, 1, 2, 3, 8]``."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; defaults split the machine's CPUs in half."""
    cpus = sorted(os.sched_getaffinity(0))
    half = max(1, len(cpus) // 2)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--max-workers", type=int, default=min(8, half))
    ap.add_argument("--server-cores", default=None, help="default: the first max-workers CPUs")
    ap.add_argument("--clients-cores", default=None, help="default: the CPUs left over")
    ap.add_argument("--clients-per-worker", type=int, default=4)
    ap.add_argument("--bcast-clients", type=int, default=None, help="default: min(4, cores)")
    ap.add_argument("--receivers", type=int, default=500, help="broadcast receivers in all")
    ap.add_argument("--per-worker-msgs", type=int, default=150_000, help="echo msgs per worker")
    ap.add_argument("--per-worker-deliveries", type=int, default=300_000)
    ap.add_argument("--coalesce-us", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=230.0)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 rep")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    n = args.max_workers
    server = parse_cpus(args.server_cores) if args.server_cores else cpus[:n]
    rest = [c for c in cpus if c not in server[:n]]
    clients = parse_cpus(args.clients_cores) if args.clients_cores else (rest or cpus[-1:])
    args.server_cpus, args.client_cpus = server, clients
    if args.bcast_clients is None:
        args.bcast_clients = max(1, min(4, len(clients)))
    if args.quick:
        args.reps, args.per_worker_msgs, args.per_worker_deliveries = 1, 10_000, 20_000
    return args


def jobs_for(w: int, args: argparse.Namespace) -> list[Job]:
    """The echo and broadcast jobs for w workers."""
    spec = goomerang(w)
    srv = ",".join(map(str, args.server_cpus[:w] or args.server_cpus))
    echo_clients = args.clients_per_worker * args.max_workers
    per_client = max(100, args.per_worker_msgs * w // echo_clients)
    echo = Job(
        "echo",
        f"w{w}",
        spec,
        srv,
        args.client_cpus,
        "pipe",
        per_client,
        ("--window", "250", "--refill", "60"),
        clients=echo_clients,
        timeout=60.0,
    )
    p = args.bcast_clients
    k = max(1, args.receivers // p)
    bcasts = max(10, args.per_worker_deliveries * w // (p * (k + 1)))
    bargs = ("--receivers", str(k), "--coalesce-us", str(args.coalesce_us))
    bcast = Job(
        "bcast",
        f"w{w}",
        spec,
        srv,
        args.client_cpus,
        "bcast",
        bcasts,
        bargs,
        clients=p,
        timeout=60.0,
        strict=False,
    )
    return [echo, bcast]


def main(argv: list[str] | None = None) -> int:
    """Run every worker count, interleaved per rep, and print the table."""
    args = parse_args(argv)
    raise_nofile()
    atexit.register(stop_all)
    binary = ensure_gmrload(verbose=not args.quiet)
    counts = list(range(1, args.max_workers + 1))
    results: dict[tuple[str, int], list[Result]] = {}
    deadline = time.monotonic() + args.max_seconds
    skipped = 0
    for rep in range(args.reps):
        for w in counts:
            for job in jobs_for(w, args):
                left = deadline - time.monotonic()
                if left <= 0:
                    skipped += 1
                    continue
                job.timeout = max(10.0, min(job.timeout, left + 10.0))  # bounds the whole run
                r = run_job(job, binary)
                results.setdefault((job.group, w), []).append(r)
                if not args.quiet:
                    print(
                        f"rep {rep + 1} {job.group:5} w{w}: ok={r.get('ok')} "
                        f"rate={r.get('rate', 0):,.0f} cli={r.get('client_cpu_pct', 0):.0f}% "
                        f"{r.get('error', '')}",
                        file=sys.stderr,
                        flush=True,
                    )

    def med(group: str, w: int, name: str) -> float | None:
        vals = [float(r[name]) for r in results.get((group, w), []) if r.get("ok")]
        return statistics.median(vals) if vals else None

    print(
        f"goomerang scaling: server cores {args.server_cpus[: args.max_workers]}, "
        f"client cores {args.client_cpus}; echo {args.clients_per_worker * args.max_workers} "
        f"pipelined clients (window 250); broadcast {args.bcast_clients} client processes, "
        f"{args.receivers} receivers in all, coalesce {args.coalesce_us} us; medians of "
        f"{args.reps} rep(s)"
    )
    head = (
        "workers",
        "echo msg/s",
        "speed-up",
        "cli cpu%",
        "bcast deliv/s",
        "speed-up",
        "cli cpu%",
    )
    print("  ".join(f"{h:>13}" for h in head))
    base = {g: med(g, 1, "rate") for g in ("echo", "bcast")}
    for w in counts:
        cells = [f"{w:>13}"]
        for g in ("echo", "bcast"):
            rate, cpu = med(g, w, "rate"), med(g, w, "client_cpu_pct")
            b = base[g]
            cells.append(f"{rate:>13,.0f}" if rate is not None else f"{'-':>13}")
            cells.append(f"{rate / b:>12.2f}x" if rate is not None and b else f"{'-':>13}")
            cells.append(f"{cpu:>13.0f}" if cpu is not None else f"{'-':>13}")
        print("  ".join(cells))
    failed = [(k, r.get("error")) for k, rs in results.items() for r in rs if not r.get("ok")]
    for (g, w), err in failed:
        print(f"failed: {g} w{w}: {err}")
    if skipped:
        print(f"time limit {args.max_seconds:.0f} s reached: {skipped} run(s) skipped")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
