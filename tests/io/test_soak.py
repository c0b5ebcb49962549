"""A bounded soak: 1,000 concurrent clients exchanging messages for a fixed time.

The server runs in a child process (so its RSS per connection can be read);
the clients share the test's event loop. Zero loss and zero errors required.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

import pytest
from serverproc import ServerProcess
from util import run

from goomerang_io import Client
from goomerang_proto import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

CLIENTS = 1000
DURATION = 5.0


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= need, f"RLIMIT_NOFILE {soft} < {need}: cannot open {CLIENTS} connections"


@pytest.mark.timeout(90)
def test_soak_1000_clients_zero_loss() -> None:
    raise_nofile(CLIENTS * 2 + 256)  # inherited by the server process
    with ServerProcess() as proc:

        async def main() -> dict[str, Any]:
            errors: list[BaseException] = []
            clients = []
            for _ in range(CLIENTS):
                client = Client(proc.addr, heartbeat_interval=None, on_error=errors.append)
                client.register_message(ReplyV1)
                clients.append(client)
            idle_rss = proc.rss_kb()
            t0 = time.monotonic()
            for i in range(0, CLIENTS, 100):
                await asyncio.gather(*(c.connect() for c in clients[i : i + 100]))
            connect_s = time.monotonic() - t0
            connected_rss = proc.rss_kb()
            sent = [0] * CLIENTS
            ok = [0] * CLIENTS
            deadline = time.monotonic() + DURATION

            async def exchange(i: int, client: Client) -> None:
                while time.monotonic() < deadline:
                    sent[i] += 1
                    text = f"{i}:{sent[i]}"
                    reply = await client.send_sync(Message(MessageV1(message=text)), timeout=10)
                    assert reply.payload.message == text
                    ok[i] += 1

            t1 = time.monotonic()
            await asyncio.gather(*(exchange(i, c) for i, c in enumerate(clients)))
            elapsed = time.monotonic() - t1
            loaded_rss = proc.rss_kb()
            for i in range(0, CLIENTS, 200):
                await asyncio.gather(*(c.close() for c in clients[i : i + 200]))
            return {
                "errors": errors,
                "sent": sum(sent),
                "ok": sum(ok),
                "idle_clients": min(ok),
                "elapsed": elapsed,
                "connect_s": connect_s,
                "rss": (idle_rss, connected_rss, loaded_rss),
            }

        r = run(main(), timeout=80)
        stats = proc.stats()
    idle_rss, connected_rss, loaded_rss = r["rss"]
    per_conn = (connected_rss - idle_rss) / CLIENTS
    print(
        f"\nsoak: {CLIENTS} clients connected in {r['connect_s']:.1f} s; "
        f"{r['ok']} round trips ({2 * r['ok']} messages) in {r['elapsed']:.1f} s = "
        f"{r['ok'] / r['elapsed']:.0f} round trips/s; fewest per client {r['idle_clients']}; "
        f"server RSS {idle_rss} kB idle -> {connected_rss} kB connected "
        f"({per_conn:.1f} kB/connection) -> {loaded_rss} kB after load; "
        f"server errors {stats['errors']}"
    )
    assert r["errors"] == []
    assert r["ok"] == r["sent"]
    assert r["idle_clients"] >= 1  # every client got through
    assert stats["errors"] == 0
    assert stats["connections"] == 0
    assert per_conn < 200
