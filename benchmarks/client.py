"""Our clients, and the Go client, against one server: what an application gets from a client.

usage: client.py [-n N] [--reps R] [--server-cpu 0] [--client-cpu 1]
                 [--goref DIR] [--servers goomerang,go]

Starts ``python -m goomerang_io serve`` (and, when the Go reference build is
found, the Go ``refserver`` too: ``--goref DIR`` or ``GOREF_DIR``), pinned with
taskset when available, and for each server prints the median of ``--reps``
runs of:

* asyncio ``goomerang_io.Client`` on uvloop, in this process, pinned to
  another CPU: async ``send`` of N MessageV1 (128-byte text) echoed back to a
  handler, at most 5,000 unanswered (msg/s, counted when the last echo
  arrived); ``send_sync`` one at a time (N/10 round trips, req/s);
  ``send_sync`` N/10 requests in flight at once (``asyncio.gather``, req/s);
* the blocking ``goomerang_io.sync.Client``: ``send_sync`` one at a time
  (N/10 round trips, req/s);
* the Go client (``refclient sync``, goomerang v0.3.0), when built, on the
  client CPU (GOMAXPROCS 1): ``SendSync`` one at a time (``-c 1``) and from
  N/10 goroutines at once (``-c N/10``), N/10 round trips each. Its payload is
  ``"s<i>"`` (a few bytes), not 128: a slight advantage to it.

Every loop is bounded by N and by a timeout. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from goref import HOW, find_goref
from procs import start_server, stop_all
from servers import go_server

from goomerang_io import Client
from goomerang_io.loop import run as run_loop
from goomerang_proto import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

TIMEOUT = 60.0
WINDOW = 5000


async def asyncio_rep(addr: str, n: int) -> dict[str, float]:
    """One run of the asyncio client's figures on a fresh connection."""
    received = 0
    all_back = asyncio.Event()
    progressed = asyncio.Event()

    def on_echo(_sender: object, _message: Message[MessageV1]) -> None:
        nonlocal received
        received += 1
        progressed.set()
        if received == n:
            all_back.set()

    client = Client(addr, heartbeat_interval=None)
    client.handle(MessageV1, on_echo)
    await client.connect()
    message = Message(MessageV1(message="m" * 128))
    out: dict[str, float] = {}
    async with asyncio.timeout(TIMEOUT):
        t0 = time.perf_counter()
        for sent in range(1, n + 1):
            await client.send(message)
            while sent - received >= WINDOW:  # bounded window: wait for echoes
                progressed.clear()
                await progressed.wait()
        await all_back.wait()
        out["asyncio send+echo msg/s"] = n / (time.perf_counter() - t0)
        m = max(1, n // 10)
        t0 = time.perf_counter()
        for _ in range(m):
            await client.send_sync(message)
        out["asyncio send_sync sequential req/s"] = m / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        await asyncio.gather(*(client.send_sync(message, timeout=TIMEOUT) for _ in range(m)))
        out[f"asyncio send_sync {m} in flight req/s"] = m / (time.perf_counter() - t0)
    await client.close()
    return out


def blocking_rep(addr: str, n: int) -> dict[str, float]:
    """The blocking client: send_sync one at a time, N/10 round trips."""
    from goomerang_io.sync import Client as BlockingClient

    message = Message(MessageV1(message="m" * 128))
    m = max(1, n // 10)
    client = BlockingClient(addr, heartbeat_interval=None)
    client.register_message(MessageV1)  # the reply's kind
    with client:  # connects; closes at the end
        deadline = time.monotonic() + TIMEOUT
        t0 = time.perf_counter()
        for _ in range(m):
            reply = client.send_sync(message, timeout=10.0)
            if not reply.is_sync:
                raise RuntimeError(f"not a sync reply: {reply!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"blocking send_sync: {m} round trips took over {TIMEOUT} s")
        rate = m / (time.perf_counter() - t0)
    return {"blocking send_sync sequential req/s": rate}


def go_rep(refclient: Path, addr: str, n: int, cpu: int | None) -> dict[str, float]:
    """The Go client (refclient sync): one goroutine, then N/10 goroutines, N/10 round trips."""
    m = max(1, n // 10)
    out: dict[str, float] = {}
    for conc, label in ((1, "go refclient SendSync sequential req/s"),
                        (m, f"go refclient SendSync {m} in flight req/s")):  # fmt: skip
        argv = [str(refclient), "sync", "-addr", addr, "-n", str(m), "-c", str(conc)]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
        lines = proc.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {}
        if proc.returncode != 0 or not result.get("complete"):
            raise RuntimeError(
                f"refclient sync failed ({proc.returncode}): {proc.stdout}{proc.stderr}"
            )
        out[label] = m / (float(result["elapsed_ms"]) / 1000)
    return out


def rep_runners(
    addr: str, n: int, goref: Path | None, cpu: int | None
) -> list[Callable[[], dict[str, float]]]:
    """One function per client kind; each runs one rep against ``addr``."""
    runners: list[Callable[[], dict[str, float]]] = [
        lambda: run_loop(asyncio_rep(addr, n)),
        lambda: blocking_rep(addr, n),
    ]
    if goref is not None:
        runners.append(lambda: go_rep(goref / "refclient", addr, n, cpu))
    return runners


def main(argv: list[str] | None = None) -> int:
    """Run the reps against each server and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=100_000, help="async sends per rep")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--goref", default=None, help="Go refserver/refclient folder (GOREF_DIR)")
    parser.add_argument("--servers", default="goomerang,go", help="goomerang and/or go")
    args = parser.parse_args(argv)
    goref = find_goref(args.goref)
    wanted = [s for s in args.servers.split(",") if s]
    servers = {"goomerang": (sys.executable, "-m", "goomerang_io", "serve", "--listen",
                             "127.0.0.1:0")}  # fmt: skip
    if goref is not None:
        servers["go"] = go_server(goref).argv
    cpu = args.client_cpu if args.client_cpu < (os.cpu_count() or 1) else None
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    for name in wanted:
        if name not in servers:
            print(f"{name}: n/a ({HOW})" if name == "go" else f"{name}: unknown server")
            continue
        server = start_server(name, servers[name], args.server_cpu)
        try:
            clients = rep_runners(f"127.0.0.1:{server.port}", args.n, goref, cpu)
            reps = [{k: v for c in clients for k, v in c().items()} for _ in range(args.reps)]
        finally:
            stop_all()
        print(f"clients against the {name} server, medians of {args.reps} rep(s)")
        for key in reps[0]:
            print(f"  {key:44} {statistics.median(r[key] for r in reps):12,.0f}")
    if goref is None:
        print(f"go refclient: n/a ({HOW})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
