"""Autobahn echo client on the blocking client's connection driver (goomerang_io.sync).

The same raw-mode engine as ``echo_client``, driven by
:class:`goomerang_io.sync.connection.Connection`: one IO thread per
connection over a non-blocking socket and ``select``, its reads, writes,
deadlines and close are what Autobahn|Testsuite checks here. The echo runs
in ``on_events`` on the IO thread (the place the driver hands a read's
events to its owner), through :meth:`Connection.submit` as any sender does.
There is no blocking *server*, so this peer has only the client role.

    python -m tests.autobahn.echo_sync HOST:PORT [--parallel N]
"""

from __future__ import annotations

import argparse
import threading
import time
from functools import partial

from goomerang_io.options import ClientOptions
from goomerang_io.sync.connection import Connection
from goomerang_io.sync.handshake import open_connection
from goomerang_proto import ClientConnection, GoomerangError
from goomerang_proto import events as ev

from .echo_client import AGENT, CASE_TIMEOUT
from .echo_server import CLOSE_TIMEOUT, MAX_MESSAGE_SIZE

OPTIONS = ClientOptions(
    max_message_size=MAX_MESSAGE_SIZE,
    close_timeout=CLOSE_TIMEOUT,
    heartbeat_interval=None,
)


def _send_raw(opcode: int, data: bytes, engine: ClientConnection) -> None:
    engine.send_raw(opcode, data)


class Session:
    """One connection to the fuzzing server: echo every text or binary message."""

    def __init__(self, host: str, port: int, path: str) -> None:
        engine = ClientConnection(
            f"{host}:{port}",
            path,
            raw=True,
            max_message_size=MAX_MESSAGE_SIZE,
            close_timeout=CLOSE_TIMEOUT,
            high_water=OPTIONS.write_limit,
            now=time.monotonic(),
        )
        opened = open_connection(engine, host, port, timeout=OPTIONS.handshake_timeout)
        self.texts: list[str] = []
        self.conn = Connection(opened.sock, engine, OPTIONS, threading.RLock(), tls=opened.tls)
        self.conn.on_events = self.on_events
        self.conn.start(opened.early)

    def on_events(self, events: list[ev.Event]) -> None:
        for event in events:
            if isinstance(event, ev.RawMessage):
                if event.opcode == 1:
                    self.texts.append(event.data.decode("utf-8"))
                try:
                    self.conn.submit(partial(_send_raw, event.opcode, event.data))
                except GoomerangError:
                    pass  # closing: nothing more is sent

    def wait(self) -> Session:
        if not self.conn.closed.wait(CASE_TIMEOUT):
            raise TimeoutError("the case did not end in time")
        return self


def run_cases(host: str, port: int, parallel: int) -> int:
    """Run every case the fuzzingserver offers from ``parallel`` threads; the case count."""
    count = int(Session(host, port, "/getCaseCount").wait().texts[0])
    cases = iter(range(1, count + 1))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                case = next(cases, None)
            if case is None:
                return
            try:
                Session(host, port, f"/runCase?case={case}&agent={AGENT}").wait()
            except BaseException as exc:  # reported by the exit status
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(max(1, parallel))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    Session(host, port, f"/updateReports?agent={AGENT}").wait()
    if errors:
        raise errors[0]
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("address", help="HOST:PORT of the fuzzingserver")
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args(argv)
    host, _, port = args.address.rpartition(":")
    print(f"ran {run_cases(host, int(port), args.parallel)} cases")


if __name__ == "__main__":
    main()
