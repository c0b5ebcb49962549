"""Autobahn echo server: goomerang_proto.ServerConnection in raw mode on asyncio.

Run as ``python -m tests.autobahn.echo_server [--port N]``; it prints
``LISTENING <port>`` on stdout once bound (port 0 picks a free one) and
serves until killed. Every text or binary message is echoed unchanged;
pings, pongs and the close handshake are the engine's own behaviour, which is
what Autobahn|Testsuite (the ``kosoku`` runner, fuzzingclient mode) checks.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import cast

from goomerang_proto import ServerConnection
from goomerang_proto import events as ev
from goomerang_proto.errors import GoomerangError

# Case 9 sends messages of up to 16 MiB; leave head room.
MAX_MESSAGE_SIZE = 64 * 1024 * 1024
CLOSE_TIMEOUT = 5.0


class EchoProtocol(asyncio.Protocol):
    """One TCP connection driven by a raw-mode ServerConnection."""

    def __init__(self) -> None:
        self.conn = ServerConnection(raw=True, ws_path="/", max_message_size=MAX_MESSAGE_SIZE)
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._process()

    def eof_received(self) -> bool:
        self.conn.receive_eof()
        self._process()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_close_timeout(self) -> None:
        self._timer = None
        self.conn.abort()
        self._process()

    def _process(self) -> None:
        conn = self.conn
        transport = self.transport
        assert transport is not None
        for _ in range(2):  # the read's events, then those of a fault applied after them
            for event in conn.events():
                if isinstance(event, ev.RawMessage):
                    try:
                        conn.send_raw(event.opcode, event.data)
                    except GoomerangError:
                        pass  # closing: nothing more is sent
                elif isinstance(event, ev.HttpRequest):
                    conn.send_http_response(404, body=b"not found\n")
            conn.apply_pending()
        data = conn.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        if conn.should_close_transport():
            transport.close()
        elif conn.close_expected() and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                CLOSE_TIMEOUT, self._on_close_timeout
            )


async def serve(host: str, port: int) -> None:
    """Serve forever on ``host:port``; print the bound port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, host, port)
    bound = server.sockets[0].getsockname()[1]
    print(f"LISTENING {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(args.host, args.port))
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(0)


if __name__ == "__main__":
    main()
