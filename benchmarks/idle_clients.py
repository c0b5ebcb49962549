"""Open N idle connections to a server and hold them (for the memory rows).

usage: idle_clients.py --port P --conns N [--proto ws|tcp] [--path /ws] [--hold S]

``ws`` connections complete the WebSocket upgrade (the request is built by
the engine's ``goomerang_proto.ClientConnection``) and then stay silent;
``tcp`` connections only connect. Once all N are up it prints
``ready N`` (or ``failed: ...`` and exits 1), then holds them until stdin
closes, SIGTERM/SIGINT arrives, or ``--hold`` seconds pass.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import uvloop
from procs import raise_nofile

from goomerang_proto import ClientConnection
from goomerang_proto.events import Connected, ConnectionClosed


class Idle(asyncio.Protocol):
    """One idle connection: sends the upgrade (ws), then only reads."""

    def __init__(self, host: str, path: str, ws: bool) -> None:
        self.conn = ClientConnection(host, path) if ws else None
        self.up: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.conn is None:
            self.up.set_result(None)
        else:
            transport.write(self.conn.data_to_send())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.conn is None:
            return
        self.conn.receive_data(data)
        for event in self.conn.events():
            if isinstance(event, Connected) and not self.up.done():
                self.up.set_result(None)
            elif isinstance(event, ConnectionClosed) and not self.up.done():
                self.up.set_exception(ConnectionError(f"upgrade failed: {event.reason}"))
        out = self.conn.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.up.done():
            self.up.set_exception(ConnectionError(f"connection lost: {exc}"))


async def open_all(port: int, conns: int, ws: bool, path: str, parallel: int) -> list[Idle]:
    """Open ``conns`` connections, at most ``parallel`` handshakes at a time."""
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{port}"
    gate = asyncio.Semaphore(parallel)
    held: list[Idle] = []

    async def one() -> None:
        async with gate:
            _, proto = await loop.create_connection(lambda: Idle(host, path, ws), "127.0.0.1", port)
            held.append(proto)
            await asyncio.wait_for(proto.up, 30)

    await asyncio.gather(*(one() for _ in range(conns)))
    return held


async def main() -> int:
    """Open, report, hold, close."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--proto", choices=("ws", "tcp"), default="ws")
    ap.add_argument("--path", default="/ws")
    ap.add_argument("--parallel", type=int, default=200)
    ap.add_argument("--hold", type=float, default=120.0)
    ap.add_argument("--open-timeout", type=float, default=120.0)
    args = ap.parse_args()
    raise_nofile(args.conns + 256)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    try:
        held = await asyncio.wait_for(
            open_all(args.port, args.conns, args.proto == "ws", args.path, args.parallel),
            args.open_timeout,
        )
    except (OSError, TimeoutError) as exc:
        print(f"failed: {type(exc).__name__}: {exc}", flush=True)
        return 1
    print(f"ready {len(held)}", flush=True)
    loop.add_reader(sys.stdin.fileno(), done.set)  # stdin closed or written: stop
    try:
        await asyncio.wait_for(done.wait(), args.hold)
    except TimeoutError:
        pass
    for idle in held:
        if idle.transport is not None:
            idle.transport.close()
    return 0


if __name__ == "__main__":
    sys.exit(uvloop.run(main()))
