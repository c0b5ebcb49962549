"""What every peer echo server shares: uvloop, the ready line, signals, a lifetime cap."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

import uvloop

# start(port) binds, returns the bound port and an async closer.
Starter = Callable[[int], Awaitable[tuple[int, Callable[[], Awaitable[None]]]]]


def main(scheme: str, path: str, start: Starter, flags: tuple[str, ...] = ()) -> None:
    """Parse ``--port``/``--max-seconds``, run ``start`` on uvloop until a signal or the cap.

    Prints ``listening on SCHEME://127.0.0.1:PORT/PATH`` once the socket accepts,
    stops on SIGINT/SIGTERM, and exits by itself after ``--max-seconds`` so a
    server the harness lost can never linger.
    """
    ap = argparse.ArgumentParser(description=f"{scheme} echo server for the benchmarks")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=1800.0)
    for flag in flags:  # server-specific switches, read by start() from sys.argv
        ap.add_argument(flag, action="store_true")
    args = ap.parse_args()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        port, close = await start(args.port)
        print(f"listening on {scheme}://127.0.0.1:{port}{path}", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), args.max_seconds)
        except TimeoutError:
            print("max-seconds reached, stopping", file=sys.stderr)
        await close()

    uvloop.run(run())
