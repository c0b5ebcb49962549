"""``send_sync(timeout=T)`` to a server that stopped reading: SyncTimeout after T seconds,
even when the request itself is still waiting for room in the write buffer.

The asyncio client started its timer only once the request was written, so a request
stuck behind a full buffer waited for the drain with no deadline (forever without a
heartbeat); found by a break-it pass. The trio client's timeout now covers the same
wait. Keep-alive is off here so that only the request's own deadline can end it.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import trio
import uvloop
from misbehave_peers import RawServer, stall

from goomerang_proto import Message, SyncTimeout
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

TIMEOUT = 1.0
SLACK = 0.5
OPTIONS = {"write_limit": 65536, "heartbeat_interval": None, "close_timeout": 1.0}
BIG = Message(MessageV1(message="s" * 500_000))
FILL = 40  # 20 MB queued first: far more than write_limit and the sockets hold


async def _asyncio_case(addr: str) -> float:
    from goomerang_io import Client

    client = Client(addr, **OPTIONS)  # type: ignore[arg-type]
    await client.connect()
    fillers = [asyncio.ensure_future(client.send(BIG)) for _ in range(FILL)]
    await asyncio.sleep(0)  # one loop turn: each scheduled send queues its bytes
    t0 = time.monotonic()
    with pytest.raises(SyncTimeout):
        await asyncio.wait_for(client.send_sync(BIG, timeout=TIMEOUT), 5 * TIMEOUT)
    elapsed = time.monotonic() - t0
    for task in fillers:
        task.cancel()
    await asyncio.wait([asyncio.ensure_future(client.close()), *fillers], timeout=5.0)
    return elapsed


async def _trio_case(addr: str) -> float:
    import trio.testing

    from goomerang_io.trio import Client

    client = Client(addr, **OPTIONS)
    client.register_message(MessageV1)
    async with client, trio.open_nursery() as fillers:
        for _ in range(FILL):
            fillers.start_soon(client.send, BIG)
        await trio.testing.wait_all_tasks_blocked()  # every send queued and waits
        t0 = time.monotonic()
        with pytest.raises(SyncTimeout), trio.fail_after(5 * TIMEOUT):
            await client.send_sync(BIG, timeout=TIMEOUT)
        elapsed = time.monotonic() - t0
        fillers.cancel_scope.cancel()
    return elapsed


@pytest.mark.timeout(30)
@pytest.mark.parametrize("runtime", ["asyncio", "uvloop", "trio"])
def test_send_sync_timeout_covers_the_wait_for_the_write_buffer(runtime: str) -> None:
    server = RawServer(stall)
    try:
        if runtime == "trio":
            elapsed = trio.run(_trio_case, server.addr)
        elif runtime == "uvloop":
            elapsed = uvloop.run(_asyncio_case(server.addr))
        else:
            elapsed = asyncio.run(_asyncio_case(server.addr))
    finally:
        server.close()
    assert elapsed < TIMEOUT + SLACK, elapsed
