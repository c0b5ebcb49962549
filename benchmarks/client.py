"""The Python client against ``goomerang serve``: what an application using our Client gets.

usage: client.py [-n N] [--reps R] [--server-cpu 0] [--client-cpu 1]

Starts ``python -m goomerang_io serve`` (pinned with taskset when available)
and drives it from an asyncio ``goomerang_io.Client`` on uvloop in this
process, pinned to another CPU, then prints the median of ``--reps`` runs of:

* async ``send`` of N MessageV1 (128-byte text), echoed back to a handler,
  at most 5,000 unanswered (msg/s, counted when the last echo arrived);
* ``send_sync`` one at a time (N/10 round trips, req/s);
* ``send_sync`` N/10 requests in flight at once (``asyncio.gather``, req/s).

Every loop is bounded by N and by a timeout. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

from procs import start_server, stop_all

from goomerang_io import Client
from goomerang_io.loop import run as run_loop
from goomerang_proto import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

TIMEOUT = 60.0
WINDOW = 5000


async def one_rep(addr: str, n: int) -> dict[str, float]:
    """One run of each figure on a fresh connection."""
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
        out["async send+echo msg/s"] = n / (time.perf_counter() - t0)
        m = max(1, n // 10)
        t0 = time.perf_counter()
        for _ in range(m):
            await client.send_sync(message)
        out["send_sync sequential req/s"] = m / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        await asyncio.gather(*(client.send_sync(message, timeout=TIMEOUT) for _ in range(m)))
        out[f"send_sync {m} in flight req/s"] = m / (time.perf_counter() - t0)
    await client.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the reps and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=100_000, help="async sends per rep")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args(argv)
    argv_server = [sys.executable, "-m", "goomerang_io", "serve", "--listen", "127.0.0.1:0"]
    server = start_server("goomerang", argv_server, args.server_cpu)
    try:
        if hasattr(os, "sched_setaffinity") and args.client_cpu < (os.cpu_count() or 1):
            os.sched_setaffinity(0, {args.client_cpu})
        addr = f"127.0.0.1:{server.port}"
        reps = [run_loop(one_rep(addr, args.n)) for _ in range(args.reps)]
    finally:
        stop_all()
    print(f"goomerang_io.Client against goomerang serve, medians of {args.reps} rep(s)")
    for key in reps[0]:
        print(f"  {key:32} {statistics.median(r[key] for r in reps):12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
