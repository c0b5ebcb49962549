"""Running a server until a signal: one process, or N workers under a supervisor.

With ``workers > 1`` the parent resolves port 0 once, then a
:class:`~goomerang_io.process.supervisor.Supervisor` forks the workers; each binds
its own SO_REUSEPORT socket on that port, builds its own (uv)loop, joins the
embedded backplane hub (or the Redis backplane the server was given) so that
broadcasts and publishes reach the clients of every worker, and stops
gracefully on SIGTERM or when the supervisor dies.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..loop import run as run_loop
from ..options import ServerOptions

if TYPE_CHECKING:
    from .worker_context import WorkerContext

log = logging.getLogger("goomerang")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Server(Protocol):
    """What running a server in worker processes needs of it (``goomerang_io.Server``)."""

    host: str
    port: int
    workers: int
    worker_index: int
    options: ServerOptions
    metrics: Any
    backplane: Any
    backplane_url: str | None
    supervisor: Any
    process_hooks: dict[str, list[Callable[[int], Any]]]

    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...

    def adopt_socket(self, sock: socket.socket) -> None: ...


async def serve_until_signal(
    server: Server,
    on_ready: Callable[[], None] | None = None,
    watch_parent: Callable[[asyncio.AbstractEventLoop, Callable[[], None]], None] | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> None:
    """Start ``server``, serve until SIGINT/SIGTERM/SIGHUP, then shut down gracefully.

    ``stop_requested()`` tells whether a stop signal arrived before the loop
    ran (a worker records them from its first instruction); the server then
    stops as soon as it started. The signals stay caught after the stop, so
    a second one (the supervisor's SIGTERM after a process-group one) never
    kills the process half-way through its stop hooks.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    if watch_parent is not None:
        watch_parent(loop, stop.set)
    if stop_requested is not None and stop_requested():
        stop.set()
    try:
        starting = asyncio.ensure_future(server.start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # asked to stop (or the supervisor died) while booting
            starting.cancel()
            return
        stopping.cancel()
        starting.result()
        if on_ready is not None:
            on_ready()
        else:
            log.info("goomerang: listening on %s", server.url)
        await stop.wait()
        await server.shutdown()
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
            if stop_requested is not None:
                signal.signal(sig, signal.SIG_IGN)  # stopping already: later ones are moot


def run_single(server: Server, on_ready: Callable[[], None] | None = None) -> int:
    """Serve in this process until SIGINT/SIGTERM; returns the exit code.

    This process is worker 0: the ``on_process_start`` / ``on_process_stop``
    hooks run with index 0, as each worker's do with ``workers > 1`` (so one
    process and many behave the same).
    """
    for fn in server.process_hooks["start"]:
        fn(0)
    try:
        run_loop(serve_until_signal(server, on_ready))
    finally:
        for fn in server.process_hooks["stop"]:
            fn(0)
    return 0


def run_workers(server: Server, on_ready: Callable[[], None] | None = None) -> int:
    """Serve with ``server.workers`` processes under a supervisor; returns the exit code."""
    from .sockets import bind_reuseport, ensure_port_free, reserve_port
    from .supervisor import Supervisor

    # Port 0: the parent holds a free port for the workers' whole life, so
    # nothing else can take it between two worker (re)starts.
    reservation = reserve_port(server.host) if server.port == 0 else None
    if reservation is None:
        ensure_port_free(server.host, server.port)
    if reservation is not None:
        server.port = int(reservation.getsockname()[1])
    use_hub = server.backplane is None and server.backplane_url is None

    def worker_main(ctx: WorkerContext) -> int:
        from ..backplane import backplane_from_url

        stops: list[int] = []
        for sig in (signal.SIGTERM,):  # from the first instruction: never die by default
            signal.signal(sig, lambda signum, _frame: stops.append(signum))
        server.worker_index = ctx.index
        if reservation is not None:
            reservation.close()  # the worker's inherited copy; the parent keeps its own
        server.adopt_socket(bind_reuseport(server.host, server.port))
        if use_hub and ctx.backplane_path is not None:
            server.backplane = backplane_from_url(None, hub_path=ctx.backplane_path)
        for fn in server.process_hooks["start"]:
            fn(ctx.index)
        try:
            run_loop(serve_until_signal(server, ctx.ready, ctx.watch_parent, lambda: bool(stops)))
        finally:
            for fn in server.process_hooks["stop"]:
                fn(ctx.index)
        return 0

    def all_ready() -> None:
        if on_ready is not None:
            on_ready()
        else:
            log.info("goomerang: listening on %s with %d workers", server.url, server.workers)

    def worker_exit(pid: int, code: int) -> None:
        if server.metrics is not None:
            from ..metrics import mark_worker_dead

            mark_worker_dead(pid)  # the supervisor logs the exit itself, once

    supervisor = Supervisor(
        worker_main,
        server.workers,
        shutdown_timeout=server.options.shutdown_timeout + server.options.close_timeout,
        on_worker_exit=worker_exit,
        on_ready=all_ready,
        hub=use_hub,
    )
    server.supervisor = supervisor
    try:
        return supervisor.run()
    finally:
        if reservation is not None:
            reservation.close()
