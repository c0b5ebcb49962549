"""Autobahn echo server: a raw-mode ServerConnection on the asyncio driver.

The engine is driven by :class:`goomerang_io.asyncio.connection.Connection`,
the one ``asyncio.Protocol`` the asyncio Server and Client use: its reads,
writes, timer (the engine's close timeout), lingering close and flow control
are what Autobahn|Testsuite (the ``kosoku`` runner, fuzzingclient mode)
checks, on the standard event loop or on uvloop (``--loop``).

Run as ``python -m tests.autobahn.echo_server [--port N] [--loop asyncio|uvloop]``;
it prints ``LISTENING <port>`` on stdout once bound (port 0 picks a free one)
and serves until killed. Every text or binary message is echoed unchanged;
pings, pongs and the close handshake are the engine's own behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from goomerang_io.asyncio.connection import Connection
from goomerang_proto import ServerConnection
from goomerang_proto import events as ev
from goomerang_proto.errors import GoomerangError

# Case 9 sends messages of up to 16 MiB; leave head room.
MAX_MESSAGE_SIZE = 64 * 1024 * 1024
CLOSE_TIMEOUT = 5.0
LOOPS = ("asyncio", "uvloop")


def echo(engine: Any, events: list[ev.Event]) -> None:
    """Echo every message unchanged (a closing engine refuses: nothing more is sent)."""
    for event in events:
        if isinstance(event, ev.RawMessage):
            try:
                engine.send_raw(event.opcode, event.data)
            except GoomerangError:
                pass
        elif isinstance(event, ev.HttpRequest):
            engine.send_http_response(404, body=b"not found\n")


class EchoProtocol(Connection):
    """One TCP connection: the asyncio driver and a raw-mode ServerConnection."""

    def __init__(self) -> None:
        now = asyncio.get_running_loop().time()
        super().__init__(
            ServerConnection(
                raw=True,
                ws_path="/",
                max_message_size=MAX_MESSAGE_SIZE,
                close_timeout=CLOSE_TIMEOUT,
                now=now,
            )
        )

    def handle_events(self, events: list[ev.Event]) -> None:
        echo(self.engine, events)


async def serve(host: str, port: int) -> None:
    """Serve forever on ``host:port``; print the bound port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, host, port)
    bound = server.sockets[0].getsockname()[1]
    print(f"LISTENING {bound}", flush=True)
    async with server:
        await server.serve_forever()


def runner(name: str) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """``asyncio.run`` or ``uvloop.run``, by ``--loop`` name."""
    if name == "uvloop":
        import uvloop

        return uvloop.run
    return asyncio.run


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    args = parser.parse_args(argv)
    try:
        runner(args.loop)(serve(args.host, args.port))
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(0)


if __name__ == "__main__":
    main()
