"""The blocking client (``goomerang_io.sync.Client``) as a driver of the misbehaving-peer suite."""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any

from misbehave_peers import CloseWatch, echo, rss_kb, send_way

from goomerang_proto import Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

WAIT = 8.0


class SyncDriver:
    """goomerang_io.sync.Client: sends from a thread, hooks from its IO and handler threads."""

    def send_until_stuck(
        self, addr: str, count: int, size: int, options: dict[str, Any], how: str = "send"
    ) -> dict[str, Any]:
        from goomerang_io.sync import Client

        errors: queue.Queue[tuple[float, BaseException]] = queue.Queue()
        client = Client(addr, on_error=[lambda e: errors.put((time.monotonic(), e))], **options)
        client.connect()
        rss0, _ = rss_kb(os.getpid())
        t0 = time.monotonic()
        returned = 0

        def sender() -> None:
            nonlocal returned
            payload = Message(MessageV1(message="s" * size))
            send = send_way(client, how)
            try:
                for _ in range(count):
                    send(payload)
                    returned += 1
            except Exception:  # ConnectionLost once the deadline fired
                pass

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        try:
            first: tuple[float, BaseException] | None = errors.get(timeout=WAIT)
        except queue.Empty:
            first = None
        rss1, _ = rss_kb(os.getpid())
        thread.join(WAIT)
        if client.status is Status.RUNNING:
            client.close()
        return {
            "returned": returned,
            "error": None if first is None else repr(first[1]),
            "error_after": None if first is None else first[0] - t0,
            "rss_growth_kb": rss1 - rss0,
        }

    def close_against_stalled(self, addr: str, options: dict[str, Any]) -> dict[str, Any]:
        from goomerang_io.sync import Client

        client = Client(addr, on_error=[lambda _e: None], **options)
        client.connect()
        payload = Message(MessageV1(message="c" * 100_000))

        def sender() -> None:
            try:
                for _ in range(40):
                    client.send(payload)
            except Exception:  # ConnectionLost once close() aborted the socket
                pass

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        link = client._link
        deadline = time.monotonic() + WAIT
        while link is not None and link.buffered == 0 and time.monotonic() < deadline:
            thread.join(0.01)  # until the socket is full and the sender waits
        t0 = time.monotonic()
        client.close()
        seconds = time.monotonic() - t0
        thread.join(WAIT)
        return {"seconds": seconds, "status": client.status.name}

    def clean_close_from_server(self, addr: str) -> dict[str, Any]:
        from goomerang_io.sync import Client

        watch = CloseWatch(threading.Event())
        client = Client(addr, on_error=[watch.on_error], heartbeat_interval=None)
        client.on_status_change(watch.on_status)
        client.connect()
        watch.closed.wait(WAIT)
        return watch.result(client.close_code)

    def until_closed(self, addr: str) -> dict[str, Any]:
        from pathlib import Path

        from goomerang_io.sync import Client

        closed = threading.Event()
        client = Client(addr, on_error=[lambda _e: None], heartbeat_interval=None)
        client.handle(MessageV1, echo)  # the README echo: a plain send, no await
        client.on_status_change(lambda s: closed.set() if s is Status.CLOSED else None)
        client.connect()
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on
        rss0, _ = rss_kb(os.getpid())
        closed.wait(60.0)
        _, hwm = rss_kb(os.getpid())
        return {"rss_growth_kb": hwm - rss0, "status": client.status.name}
