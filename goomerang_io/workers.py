"""Running a server until a signal: one process, or N workers under a supervisor."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

from .loop import run as run_loop

if TYPE_CHECKING:
    from .server import Server


async def serve_until_signal(server: Server, on_ready: object = None) -> None:
    """Start ``server``, serve until SIGINT/SIGTERM, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        if callable(on_ready):
            on_ready()
        else:
            print(f"goomerang: listening on {server.url}", flush=True)
        await stop.wait()
        await server.shutdown()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_single(server: Server, on_ready: object = None) -> int:
    """Serve in this process until SIGINT/SIGTERM; returns the exit code."""
    run_loop(serve_until_signal(server, on_ready))
    return 0


def run_workers(server: Server) -> int:
    """Serve with ``server.workers`` processes (see goomerang_io.supervisor)."""
    raise NotImplementedError("multi-worker mode is not wired yet")
