"""A known workload, then /metrics scraped over HTTP: exact counts, 1 and 2 workers."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from goomerang_io import Client, Response, Server
from goomerang_io.cli import echo_handler
from goomerang_io.loop import run
from goomerang_io.metrics import ServerMetrics, metrics_http_response
from goomerang_proto import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

ROOT = Path(__file__).resolve().parents[2]
KIND = "goomerang.example.MessageV1"
N_SENDS = 30
M_SYNC = 12
SERVE = [sys.executable, "-m", "goomerang_io", "serve"]


def scrape(addr: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def workload(addr: str) -> None:
    """N sends (echoed), M sync sends, one client broadcast, one publish to a subscriber."""
    inbox: asyncio.Queue[str] = asyncio.Queue()
    client = Client(addr, heartbeat_interval=None)
    client.handle(MessageV1, lambda _s, m: inbox.put_nowait(m.payload.message))
    await client.connect()
    for i in range(N_SENDS):
        await client.send(Message(MessageV1(message=f"s{i}")))
    for _ in range(N_SENDS):
        await asyncio.wait_for(inbox.get(), 5)
    for i in range(M_SYNC):
        await client.send_sync(Message(MessageV1(message=f"y{i}")), timeout=5)
    await client.subscribe("t")
    await client.broadcast(Message(MessageV1(message="bcast")))
    assert await asyncio.wait_for(inbox.get(), 5) == "bcast"
    await client.publish("t", Message(MessageV1(message="pub")))
    assert await asyncio.wait_for(inbox.get(), 5) == "pub"
    await client.close()


def check(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    k = (("kind", KIND),)
    handled = N_SENDS + M_SYNC
    assert samples[("goomerang_server_message_received_size_bytes_count", k)] == handled
    assert samples[("goomerang_server_message_processing_duration_seconds_count", k)] == handled
    assert samples[("goomerang_server_message_sent_size_bytes_count", k)] == handled
    assert samples[("goomerang_server_broadcast_client_total", (("message", KIND),))] == 1
    assert samples[("goomerang_server_pubsub_subscribe_total", (("topic", "t"),))] == 1
    pub = (("message", KIND), ("topic", "t"))
    assert samples[("goomerang_server_pubsub_publish_total", pub)] == 1
    assert samples[("goomerang_server_errors_total", ())] == 0


@pytest.mark.timeout(60)
def test_scrape_counts_one_process() -> None:
    async def main() -> None:
        registry = CollectorRegistry()
        server = Server("127.0.0.1:0", metrics=ServerMetrics(registry=registry))
        server.handle(MessageV1, echo_handler)

        def metrics_route(_req: Any) -> Response:
            status, headers, body = metrics_http_response(registry)
            return Response(status, body, tuple(headers))

        server.route("/metrics", metrics_route)
        async with server:
            await workload(server.addr)
            samples = await asyncio.to_thread(scrape, server.addr)
        check(samples)
        assert samples[("goomerang_server_status", ())] == 1  # RUNNING when scraped

    run(main())


@pytest.mark.timeout(90)
def test_scrape_counts_two_workers() -> None:
    proc = subprocess.Popen(
        [*SERVE, "--listen", "127.0.0.1:0", "--workers", "2", "--metrics"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # log lines ("worker 0 ready") come first
            seen.append(line)
            match = re.search(r"listening on ws://([^/\s]+)/ws", line)
            if match:
                break
        assert match, seen
        addr = match.group(1)
        # Two workloads on two connections; with SO_REUSEPORT they may land on
        # either worker: every scrape (answered by any worker) merges both.
        run(workload(addr))
        run(workload(addr))
        for _ in range(4):
            samples = scrape(addr)
            k = (("kind", KIND),)
            handled = 2 * (N_SENDS + M_SYNC)
            assert samples[("goomerang_server_message_received_size_bytes_count", k)] == handled
            assert samples[("goomerang_server_message_sent_size_bytes_count", k)] == handled
            assert samples[("goomerang_server_broadcast_client_total", (("message", KIND),))] == 2
            pub = (("message", KIND), ("topic", "t"))
            assert samples[("goomerang_server_pubsub_publish_total", pub)] == 2
            assert samples[("goomerang_server_errors_total", ())] == 0
            assert samples[("goomerang_server_config_max_concurrency", ())] == 20  # 2 x 10
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
