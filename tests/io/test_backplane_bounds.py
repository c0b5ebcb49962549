"""Every queue between processes is bounded in bytes (issue 11, input 9).

* Worker -> hub: a hub that stops reading never grows a worker past
  ``max_outbox_bytes``; the rest is dropped and counted (``on_drop``).
* Node -> Redis: a Redis paused with ``CLIENT PAUSE`` (a real redis-server)
  while a node publishes 16 KB messages never grows the outbox past
  ``max_outbox_bytes``; the stall is noticed within about two health
  intervals (2 s by default); the backlog flushed after a short pause stays
  inside Redis's pubsub output-buffer limit: the receiving node keeps its
  subscription and gets every message that was sent.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from redis_server import RedisServer

from goomerang_io.backplane import BackplaneUnavailable, LocalBackplane
from goomerang_io.backplane.base import decode_envelope
from goomerang_io.backplane.redis import RedisBackplane
from goomerang_io.backplane.stream import EnvelopeStream, frame_envelope
from goomerang_io.loop import run

WAIT = 5.0
MSG = b"x" * 16 * 1024


class _DeafHub:
    """A hub that acknowledges HELLO, then never reads again (its socket buffer fills)."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.conn: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.conn = conn
        stream = EnvelopeStream()
        while True:
            data = conn.recv(65536)
            if not data:
                return
            for payload in stream.feed(data):
                conn.sendall(frame_envelope(payload))  # the HELLO acknowledgement
                if decode_envelope(payload).origin:
                    return  # acknowledged: read nothing more

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()
        self._thread.join(5)


def test_worker_to_hub_path_is_bounded_in_bytes() -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory(prefix="gmhub-") as d:
            hub = _DeafHub(os.path.join(d, "hub.sock"))
            bound = 1024 * 1024
            bp = LocalBackplane(hub.listener.getsockname(), node_id="w", max_outbox_bytes=bound)
            drops: list[int] = []
            errors: list[Exception] = []
            bp.on_drop = drops.append
            await bp.start(lambda _m: None, errors.append)
            assert bp.healthy()
            peak = 0
            for i in range(2000):  # 32 MiB offered
                bp.publish_nowait("t", "k", MSG)
                peak = max(peak, bp.queued_bytes())
                if i % 50 == 0:
                    await asyncio.sleep(0)  # let the transport write what the socket takes
            status = bp.status()
            print("worker->hub: peak queued", peak, "dropped", status["dropped"])
            assert peak <= bound
            assert status["dropped"] == sum(drops) > 1000
            assert status["dropped_bytes"] >= status["dropped"] * len(MSG)
            # reported once for the whole episode, not once per message
            overload = [e for e in errors if "not reading" in str(e)]
            assert len(overload) == 1 and isinstance(overload[0], BackplaneUnavailable)
            await bp.close()
            hub.close()

    run(main())


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


async def _pause(url: str, ms: int) -> None:
    admin = aioredis.Redis.from_url(url)
    try:
        await admin.execute_command("CLIENT", "PAUSE", str(ms), "ALL")
    finally:
        await admin.aclose()


async def _publish_for(bp: RedisBackplane, seconds: float) -> int:
    """About 1,600 x 16 KB messages per second for ``seconds``; the peak outbox bytes."""
    peak = 0
    end = time.monotonic() + seconds
    for _ in range(int(seconds * 100) + 1):  # bounded in count and time
        if time.monotonic() >= end:
            break
        for _ in range(16):
            bp.publish_nowait("t", "k", MSG)
            peak = max(peak, int(bp.status()["queued_bytes"]))
        # pacing, not synchronisation: a producer at a steady rate (the load, over time)
        await asyncio.sleep(0.01)
    return peak


def test_a_paused_redis_is_detected_in_seconds_and_the_outbox_stays_bounded(
    redis: RedisServer,
) -> None:
    async def main() -> None:
        a = RedisBackplane(redis.url, node_id="a", reconnect_backoff=(0.05, 0.2))
        drops: list[int] = []
        a.on_drop = drops.append
        health: list[tuple[float, bool]] = []
        a.on_health_change = lambda up: health.append((time.monotonic(), up))
        await a.start(lambda _m: None, lambda _e: None)
        await asyncio.wait_for(a.wait_connected(), WAIT)
        paused_at = time.monotonic()
        await _pause(redis.url, 4000)
        peak = await _publish_for(a, 3.5)
        down = [t for t, up in health if not up]
        assert down, "the stall was never noticed"
        detected = down[0] - paused_at
        print(f"redis stall noticed after {detected:.2f} s; peak outbox {peak} bytes")
        assert detected < 3.0  # two health intervals (1 s each) and the scheduling slack
        assert peak <= a.max_outbox_bytes
        assert a.status()["dropped"] == sum(drops) > 0
        await asyncio.wait_for(a.wait_connected(), 10)  # back once the pause ends
        await a.close()

    run(main())


class _SlowSubscriber:
    """A raw Redis subscriber that stops reading: Redis's output buffer for it fills."""

    def __init__(self, port: int, channel: bytes) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(WAIT)
        self.sock.sendall(b"CLIENT SETNAME slowsub\r\n")
        self._expect(b"+OK\r\n")
        self.sock.sendall(b"SUBSCRIBE " + channel + b"\r\n")
        self._expect(b":1\r\n")  # the confirmation ends with the subscription count

    def _expect(self, tail: bytes) -> None:
        data = b""
        while not data.endswith(tail):
            data += self.sock.recv(4096)

    def count_messages(self, want: int, timeout: float) -> int:
        """Read until ``want`` messages arrived, EOF, or ``timeout``; the count."""
        marker = b"*3\r\n$7\r\nmessage\r\n"
        seen = 0
        tail = b""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.5)
        while seen < want and time.monotonic() < deadline:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not data:
                break
            chunk = tail + data
            seen += chunk.count(marker)
            tail = chunk[-(len(marker) - 1) :]
        return seen

    def close(self) -> None:
        self.sock.close()


async def _connected_names(url: str) -> list[str]:
    admin = aioredis.Redis.from_url(url)
    try:
        clients = await admin.client_list()
    finally:
        await admin.aclose()
    return [c.get("name", "") for c in clients]


def test_a_backlog_after_a_short_pause_stays_inside_the_pubsub_buffer_limit(
    redis: RedisServer,
) -> None:
    """A receiver that reads slowly keeps its subscription when the backlog is flushed.

    Redis's default ``client-output-buffer-limit pubsub 32mb 8mb 60``: a
    backlog above 32 MB would make Redis close the receiver's connection at
    once (the unbounded outbox of before did, with about 35 MB here).
    """

    async def main() -> None:
        sub = _SlowSubscriber(redis.port, b"goomerang:topic:t")
        a = RedisBackplane(redis.url, node_id="a", health_interval=30.0)
        await a.start(lambda _m: None, lambda _e: None)
        await asyncio.wait_for(a.wait_connected(), WAIT)
        await _pause(redis.url, 1500)
        peak = await _publish_for(a, 1.8)  # the pause, then the flush of the backlog
        assert await a.wait_sent(10.0)  # the sender task drained the outbox
        assert "slowsub" in await _connected_names(redis.url)  # not closed by Redis
        sa = a.status()
        got = await asyncio.to_thread(sub.count_messages, int(sa["sent"]), 10.0)
        print(f"backlog: peak {peak} B, sent {sa['sent']}, dropped {sa['dropped']}, got {got}")
        assert peak <= a.max_outbox_bytes
        assert sa["dropped"] > 0  # offered far more than the bound during the pause
        assert got == sa["sent"] > 0  # every message sent reached the slow subscriber
        sub.close()
        await a.close()

    run(main())
