"""Client drivers for the misbehaving-peer suite: one per client runtime.

``CLIENT_DRIVERS`` is the parametrization (asyncio on the standard loop, asyncio on
uvloop, blocking, trio): a new client runtime joins every client case as one more
entry implementing :class:`misbehave_peers.ClientDriver`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from misbehave_peers import ClientDriver, CloseWatch, echo, rss_kb, send_way
from misbehave_sync_client import SyncDriver
from misbehave_trio_client import TrioDriver

from goomerang_proto import Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

T = TypeVar("T")


async def clean_close(addr: str) -> dict[str, Any]:
    """Connect an asyncio Client and wait (5 s at most) until the server has closed it.

    Returns ``errors`` (repr of each error reported), ``statuses`` (the names,
    in order) and ``code`` (the close code the client saw)."""
    from goomerang_io import Client

    watch = CloseWatch(asyncio.Event())
    client = Client(addr, on_error=[watch.on_error], heartbeat_interval=None)
    client.on_status_change(watch.on_status)
    await client.connect()
    async with asyncio.timeout(5.0):
        await watch.closed.wait()
    return watch.result(client.close_code)


def run_uvloop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh uvloop loop (never a silent fallback to asyncio's)."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


class AsyncioDriver:
    """goomerang_io.Client on asyncio's standard loop, or on uvloop with ``uvloop=True``."""

    def __init__(self, *, uvloop: bool = False) -> None:
        self.run: Callable[[Coroutine[Any, Any, Any]], Any] = run_uvloop if uvloop else asyncio.run

    def send_until_stuck(
        self, addr: str, count: int, size: int, options: dict[str, Any], how: str = "send"
    ) -> dict[str, Any]:
        return self.run(self._send_until_stuck(addr, count, size, options, how))

    async def _send_until_stuck(
        self, addr: str, count: int, size: int, options: dict[str, Any], how: str = "send"
    ) -> dict[str, Any]:
        from goomerang_io import Client

        errors: list[tuple[float, BaseException]] = []
        failed = asyncio.Event()

        def on_error(exc: BaseException) -> None:
            errors.append((time.monotonic(), exc))
            failed.set()

        client = Client(addr, on_error=[on_error], **options)
        await client.connect()
        rss0, _ = rss_kb(os.getpid())
        t0 = time.monotonic()
        returned = 0

        async def sender() -> None:
            nonlocal returned
            payload = Message(MessageV1(message="s" * size))
            send = send_way(client, how)
            for _ in range(count):
                await send(payload)
                returned += 1

        task = asyncio.ensure_future(sender())
        try:
            async with asyncio.timeout(8.0):
                await failed.wait()
        except TimeoutError:
            pass
        rss1, _ = rss_kb(os.getpid())
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if client.status is Status.RUNNING:
            await client.close()
        first = errors[0] if errors else None
        return {
            "returned": returned,
            "error": None if first is None else repr(first[1]),
            "error_after": None if first is None else first[0] - t0,
            "rss_growth_kb": rss1 - rss0,
        }

    def close_against_stalled(self, addr: str, options: dict[str, Any]) -> dict[str, Any]:
        return self.run(self._close_against_stalled(addr, options))

    async def _close_against_stalled(self, addr: str, options: dict[str, Any]) -> dict[str, Any]:
        from goomerang_io import Client

        client = Client(addr, on_error=[lambda _e: None], **options)
        await client.connect()
        payload = Message(MessageV1(message="c" * 100_000))
        sends = [asyncio.ensure_future(client.send(payload)) for _ in range(40)]
        await asyncio.sleep(0)  # let the first writes reach the (stalled) socket
        t0 = time.monotonic()
        await client.close()
        seconds = time.monotonic() - t0
        for task in sends:
            task.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
        return {"seconds": seconds, "status": client.status.name}

    def clean_close_from_server(self, addr: str) -> dict[str, Any]:
        return self.run(clean_close(addr))

    def until_closed(self, addr: str) -> dict[str, Any]:
        return self.run(self._until_closed(addr))

    async def _until_closed(self, addr: str) -> dict[str, Any]:
        from pathlib import Path

        from goomerang_io import Client

        closed = asyncio.Event()
        client = Client(addr, on_error=[lambda _e: None], heartbeat_interval=None)
        client.handle(MessageV1, echo)  # the README echo: a plain send, no await
        client.on_status_change(lambda s: closed.set() if s is Status.CLOSED else None)
        await client.connect()
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on
        rss0, _ = rss_kb(os.getpid())
        async with asyncio.timeout(60.0):
            await closed.wait()
        _, hwm = rss_kb(os.getpid())
        return {"rss_growth_kb": hwm - rss0, "status": client.status.name}


CLIENT_DRIVERS: dict[str, ClientDriver] = {
    "asyncio": AsyncioDriver(),
    "uvloop": AsyncioDriver(uvloop=True),
    "blocking": SyncDriver(),
    "trio": TrioDriver(),
}
