"""Autobahn echo client: a raw-mode ClientConnection on the asyncio driver.

Driven by :class:`goomerang_io.asyncio.connection.Connection` (the protocol
the asyncio Server and Client use), on the standard loop or uvloop
(``--loop``). Follows the Autobahn|Testsuite fuzzingserver protocol (what
the ``kosoku`` runner serves with ``-m fuzzingserver``): read the case count
from ``/getCaseCount``, run ``/runCase?case=N&agent=AGENT`` for every case
(echoing every message), then ``/updateReports?agent=AGENT`` to end the run.

Run as ``python -m tests.autobahn.echo_client HOST:PORT [--parallel N] [--loop L]``.
"""

from __future__ import annotations

import argparse
import asyncio

from goomerang_io.asyncio.connection import Connection
from goomerang_proto import ClientConnection
from goomerang_proto import events as ev

from .echo_server import CLOSE_TIMEOUT, LOOPS, MAX_MESSAGE_SIZE, echo, runner

AGENT = "goomerang-python"
CASE_TIMEOUT = 60.0


class EchoClientProtocol(Connection):
    """One client connection; ``closed`` resolves when the transport is gone."""

    def __init__(self, host: str, path: str) -> None:
        now = asyncio.get_running_loop().time()
        super().__init__(
            ClientConnection(
                host,
                path,
                raw=True,
                max_message_size=MAX_MESSAGE_SIZE,
                close_timeout=CLOSE_TIMEOUT,
                now=now,
            )
        )
        self.texts: list[str] = []

    def handle_events(self, events: list[ev.Event]) -> None:
        for event in events:
            if isinstance(event, ev.RawMessage) and event.opcode == 1:
                self.texts.append(event.data.decode("utf-8"))
        echo(self.engine, events)


async def _session(host: str, port: int, path: str) -> EchoClientProtocol:
    loop = asyncio.get_running_loop()
    _transport, proto = await loop.create_connection(
        lambda: EchoClientProtocol(f"{host}:{port}", path), host, port
    )
    await asyncio.wait_for(proto.closed, CASE_TIMEOUT)
    return proto


async def run(host: str, port: int, *, parallel: int = 1, agent: str = AGENT) -> int:
    """Run every case the fuzzingserver offers; return the number of cases."""
    counter = await _session(host, port, "/getCaseCount")
    count = int(counter.texts[0])
    cases = iter(range(1, count + 1))

    async def worker() -> None:
        for case in cases:
            await _session(host, port, f"/runCase?case={case}&agent={agent}")

    await asyncio.gather(*(worker() for _ in range(max(1, parallel))))
    await _session(host, port, f"/updateReports?agent={agent}")
    return count


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("address", help="HOST:PORT of the fuzzingserver")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--agent", default=AGENT)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    args = parser.parse_args(argv)
    host, _, port = args.address.rpartition(":")
    count = runner(args.loop)(run(host, int(port), parallel=args.parallel, agent=args.agent))
    print(f"ran {count} cases")


if __name__ == "__main__":
    main()
