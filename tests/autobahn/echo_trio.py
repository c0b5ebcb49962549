"""Autobahn echo peers on the trio runtime's connection driver (goomerang_io.trio).

The same raw-mode engines as ``echo_server`` / ``echo_client``, driven by
:class:`goomerang_io.trio.connection.Connection`: its reads, writes, timers
and close are what Autobahn|Testsuite checks here.

    python -m tests.autobahn.echo_trio server [--port N]      # prints LISTENING <port>
    python -m tests.autobahn.echo_trio client HOST:PORT [--parallel N]
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import trio

from goomerang_io.options import ServerOptions
from goomerang_io.trio.connection import Connection
from goomerang_proto import ClientConnection, GoomerangError, ServerConnection
from goomerang_proto import events as ev

from .echo_client import AGENT, CASE_TIMEOUT
from .echo_server import CLOSE_TIMEOUT, MAX_MESSAGE_SIZE

_ids = itertools.count(1)


class Echo:
    """The connection's owner: echoes every text or binary message unchanged."""

    options = ServerOptions(max_message_size=MAX_MESSAGE_SIZE, close_timeout=5.0)

    def __init__(self) -> None:
        self.texts: list[str] = []

    def on_event(self, conn: Connection, event: ev.Event) -> None:
        if isinstance(event, ev.RawMessage):
            if event.opcode == 1:
                self.texts.append(event.data.decode("utf-8"))
            try:
                conn.engine.send_raw(event.opcode, event.data)
            except GoomerangError:
                pass  # closing: nothing more is sent
        elif isinstance(event, ev.HttpRequest):
            assert isinstance(conn.engine, ServerConnection)
            conn.engine.send_http_response(404, body=b"not found\n")

    def report_error(self, exc: BaseException) -> None:
        pass


async def serve(port: int) -> None:
    async def one(stream: trio.SocketStream) -> None:
        engine = ServerConnection(
            raw=True,
            ws_path="/",
            max_message_size=MAX_MESSAGE_SIZE,
            close_timeout=CLOSE_TIMEOUT,
            now=trio.current_time(),
        )
        await Connection(stream, engine, Echo(), next(_ids)).run()

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    print(f"LISTENING {listeners[0].socket.getsockname()[1]}", flush=True)
    await trio.serve_listeners(one, listeners)


async def session(host: str, port: int, path: str) -> Echo:
    echo = Echo()
    with trio.fail_after(CASE_TIMEOUT):
        stream = await trio.open_tcp_stream(host, port)
        engine = ClientConnection(
            f"{host}:{port}", path, raw=True, max_message_size=MAX_MESSAGE_SIZE
        )
        await Connection(stream, engine, echo, next(_ids)).run()
    return echo


async def run_cases(host: str, port: int, parallel: int) -> int:
    count = int((await session(host, port, "/getCaseCount")).texts[0])
    cases = iter(range(1, count + 1))

    async def worker() -> None:
        for case in cases:
            await session(host, port, f"/runCase?case={case}&agent={AGENT}")

    async with trio.open_nursery() as nursery:
        for _ in range(max(1, parallel)):
            nursery.start_soon(worker)
    await session(host, port, f"/updateReports?agent={AGENT}")
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("address", nargs="?", default="127.0.0.1:0")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=1)
    args: Any = parser.parse_args(argv)
    if args.role == "server":
        trio.run(serve, args.port)
    else:
        host, _, port = args.address.rpartition(":")
        print(f"ran {trio.run(run_cases, host, int(port), args.parallel)} cases")


if __name__ == "__main__":
    main()
