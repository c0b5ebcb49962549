"""The trio client (``goomerang_io.trio.Client``) as a driver of the misbehaving-peer suite."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import trio
from misbehave_peers import CloseWatch, echo, rss_kb, send_way

from goomerang_proto import Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

WAIT = 8.0


class TrioDriver:
    """goomerang_io.trio.Client: each case is one ``trio.run``, the client's nursery held open."""

    def send_until_stuck(
        self, addr: str, count: int, size: int, options: dict[str, Any], how: str = "send"
    ) -> dict[str, Any]:
        return trio.run(self._send_until_stuck, addr, count, size, options, how)

    async def _send_until_stuck(
        self, addr: str, count: int, size: int, options: dict[str, Any], how: str = "send"
    ) -> dict[str, Any]:
        from goomerang_io.trio import Client

        errors: list[tuple[float, BaseException]] = []
        failed = trio.Event()

        def on_error(exc: BaseException) -> None:
            errors.append((time.monotonic(), exc))
            failed.set()

        returned = 0

        async def sender() -> None:
            nonlocal returned
            payload = Message(MessageV1(message="s" * size))
            send = send_way(client, how)
            try:
                for _ in range(count):
                    await send(payload)
                    returned += 1
            except Exception:  # ConnectionLost/NotRunning once the deadline fired
                pass

        client = Client(addr, on_error=[on_error], **options)
        async with client, trio.open_nursery() as nursery:
            rss0, _ = rss_kb(os.getpid())
            t0 = time.monotonic()
            nursery.start_soon(sender)
            with trio.move_on_after(WAIT):
                await failed.wait()
            rss1, _ = rss_kb(os.getpid())
            nursery.cancel_scope.cancel()
        first = errors[0] if errors else None
        return {
            "returned": returned,
            "error": None if first is None else repr(first[1]),
            "error_after": None if first is None else first[0] - t0,
            "rss_growth_kb": rss1 - rss0,
        }

    def close_against_stalled(self, addr: str, options: dict[str, Any]) -> dict[str, Any]:
        return trio.run(self._close_against_stalled, addr, options)

    async def _close_against_stalled(self, addr: str, options: dict[str, Any]) -> dict[str, Any]:
        from goomerang_io.trio import Client

        client = Client(addr, on_error=[lambda _e: None], **options)
        payload = Message(MessageV1(message="c" * 100_000))

        async def sender() -> None:
            try:
                await client.send(payload)
            except Exception:  # ConnectionLost once close() gave up on the stalled server
                pass

        async with client, trio.open_nursery() as nursery:
            for _ in range(40):
                nursery.start_soon(sender)
            await trio.testing.wait_all_tasks_blocked()  # the sends wait on the full socket
            t0 = time.monotonic()
            await client.close()
            seconds = time.monotonic() - t0
            nursery.cancel_scope.cancel()
        return {"seconds": seconds, "status": client.status.name}

    def clean_close_from_server(self, addr: str) -> dict[str, Any]:
        return trio.run(self._clean_close, addr)

    async def _clean_close(self, addr: str) -> dict[str, Any]:
        from goomerang_io.trio import Client

        watch = CloseWatch(trio.Event())
        client = Client(addr, on_error=[watch.on_error], heartbeat_interval=None)
        client.on_status_change(watch.on_status)
        async with client:
            with trio.fail_after(5.0):
                await watch.closed.wait()
        return watch.result(client.close_code)

    def until_closed(self, addr: str) -> dict[str, Any]:
        return trio.run(self._until_closed, addr)

    async def _until_closed(self, addr: str) -> dict[str, Any]:
        from goomerang_io.trio import Client

        closed = trio.Event()
        client = Client(addr, on_error=[lambda _e: None], heartbeat_interval=None)
        client.handle(MessageV1, echo)  # the README echo: a plain send, no await
        client.on_status_change(lambda s: closed.set() if s is Status.CLOSED else None)
        async with client:
            Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on
            rss0, _ = rss_kb(os.getpid())
            with trio.fail_after(60.0):
                await closed.wait()
            _, hwm = rss_kb(os.getpid())
        return {"rss_growth_kb": hwm - rss0, "status": client.status.name}
