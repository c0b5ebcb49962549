"""Autobahn echo client: goomerang_proto.ClientConnection in raw mode on asyncio.

Follows the Autobahn|Testsuite fuzzingserver protocol (what the ``kosoku``
runner serves with ``-m fuzzingserver``): read the case count from
``/getCaseCount``, run ``/runCase?case=N&agent=AGENT`` for every case (echoing
every message), then ``/updateReports?agent=AGENT`` to end the run.

Run as ``python -m tests.autobahn.echo_client HOST:PORT [--parallel N]``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

from goomerang_proto import ClientConnection
from goomerang_proto import events as ev
from goomerang_proto.errors import GoomerangError

AGENT = "goomerang-python"
MAX_MESSAGE_SIZE = 64 * 1024 * 1024
CLOSE_TIMEOUT = 5.0
CASE_TIMEOUT = 60.0


class EchoClientProtocol(asyncio.Protocol):
    """One client connection; ``done`` resolves when the transport is gone."""

    def __init__(self, host: str, path: str) -> None:
        self.conn = ClientConnection(host, path, raw=True, max_message_size=MAX_MESSAGE_SIZE)
        self.transport: asyncio.Transport | None = None
        self.texts: list[str] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)
        self._flush()

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
        if not self.done.done():
            self.done.set_result(None)

    def _on_close_timeout(self) -> None:
        self._timer = None
        self.conn.abort()
        self._process()

    def _process(self) -> None:
        conn = self.conn
        for _ in range(2):  # the read's events, then those of a fault applied after them
            for event in conn.events():
                if isinstance(event, ev.RawMessage):
                    if event.opcode == 1:
                        self.texts.append(event.data.decode("utf-8"))
                    try:
                        conn.send_raw(event.opcode, event.data)
                    except GoomerangError:
                        pass  # closing: nothing more is sent
            conn.apply_pending()
        self._flush()

    def _flush(self) -> None:
        conn = self.conn
        transport = self.transport
        assert transport is not None
        data = conn.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        if conn.should_close_transport():
            transport.close()
        elif conn.close_expected() and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                CLOSE_TIMEOUT, self._on_close_timeout
            )


async def _session(host: str, port: int, path: str) -> EchoClientProtocol:
    loop = asyncio.get_running_loop()
    _transport, proto = await loop.create_connection(
        lambda: EchoClientProtocol(f"{host}:{port}", path), host, port
    )
    await asyncio.wait_for(proto.done, CASE_TIMEOUT)
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
    args = parser.parse_args(argv)
    host, _, port = args.address.rpartition(":")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        runner = asyncio.run
    else:
        runner = uvloop.run
    count = runner(run(host, int(port), parallel=args.parallel, agent=args.agent))
    print(f"ran {count} cases")


if __name__ == "__main__":
    main()
