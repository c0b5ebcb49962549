"""Two connect() calls at once on one client: one connects, the other raises
AlreadyRunning, and the server holds exactly one connection (before, asyncio and the
blocking client raised IllegalTransition and orphaned a connection; trio hung).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import trio
from threaded import ThreadedServer
from util import new_client, new_server, poll_until, run, running

from goomerang_proto import AlreadyRunning, Status


def test_asyncio_client() -> None:
    async def main() -> None:
        server = new_server()
        async with running(server):
            client = new_client(server)
            results = await asyncio.gather(
                client.connect(), client.connect(), return_exceptions=True
            )
            assert sorted(type(r).__name__ for r in results) == ["AlreadyRunning", "NoneType"]
            assert client.status is Status.RUNNING
            await poll_until(lambda: server.connections() == 1)
            await client.close()
            await poll_until(lambda: server.connections() == 0)

    run(main())


def test_blocking_client() -> None:
    from goomerang_io.sync import Client

    with ThreadedServer() as ts:
        client = Client(ts.addr, heartbeat_interval=None)
        outcomes: list[Any] = []
        start = threading.Barrier(2)

        def connect() -> None:
            start.wait(5.0)
            try:
                client.connect()
                outcomes.append(None)
            except AlreadyRunning as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=connect) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10.0)
        assert sorted(type(o).__name__ for o in outcomes) == ["AlreadyRunning", "NoneType"]
        assert client.status is Status.RUNNING
        assert ts.call(lambda: _connections(ts)) == 1
        client.close()


async def _connections(ts: ThreadedServer) -> int:
    assert ts.server is not None
    return ts.server.connections()


@pytest.mark.timeout(20)
def test_trio_client() -> None:
    from goomerang_io.trio import Client, Server

    async def main() -> None:
        server = Server("127.0.0.1:0")
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            client = Client(server.addr, heartbeat_interval=None)
            async with client:  # connected
                await client.close()
                outcomes: list[Any] = []

                async def connect() -> None:
                    try:
                        await client.connect()
                        outcomes.append(None)
                    except AlreadyRunning as exc:
                        outcomes.append(exc)

                with trio.fail_after(10.0):
                    async with trio.open_nursery() as both:
                        both.start_soon(connect)
                        both.start_soon(connect)
                assert sorted(type(o).__name__ for o in outcomes) == [
                    "AlreadyRunning",
                    "NoneType",
                ]
                assert client.status is Status.RUNNING and server.connections() == 1
            await server.shutdown()

    trio.run(main)
