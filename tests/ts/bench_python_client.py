"""The Python asyncio client on the same measurements as the TypeScript bench (a peer row).

``python tests/ts/bench_python_client.py HOST:PORT N WINDOW`` prints one JSON line:
sequential sendSync round trips/s (and their median in ms), the same with WINDOW
in flight, and pub/sub latency (this client publishes to a topic it subscribed to;
p50/p99 in ms over min(N, 1000) samples). Bounded in count; run by
clients/typescript/test/bench/bench.ts.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from goomerang_io import Client, Message, Sender
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1


async def main(addr: str, n: int, window: int) -> None:
    arrived: asyncio.Queue[float] = asyncio.Queue()

    def on_message(_sender: Sender, _message: Message[Any]) -> None:
        arrived.put_nowait(time.perf_counter())

    client = Client(addr)
    client.handle(MessageV1, on_message)
    await client.connect()
    m = Message(MessageV1(message="bench"))
    for _ in range(200):
        await client.send_sync(m, timeout=10)
    rtts = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        await client.send_sync(m, timeout=10)
        rtts.append((time.perf_counter() - t) * 1000)
    sequential = n / (time.perf_counter() - t0)
    rtts.sort()
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while sent < n:
            sent += 1
            await client.send_sync(m, timeout=10)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(window)))
    windowed = n / (time.perf_counter() - t0)
    await client.subscribe("bench-latency")
    await client.send_sync(m, timeout=10)
    lat = []
    for i in range(min(n, 1000)):
        start = time.perf_counter()
        await client.publish("bench-latency", Message(MessageV1(message=f"p{i}")))
        lat.append((await asyncio.wait_for(arrived.get(), 10) - start) * 1000)
    await client.close()
    lat.sort()
    print(
        json.dumps(
            {
                "syncSequentialPerS": sequential,
                "syncP50Ms": rtts[len(rtts) // 2],
                "syncWindowedPerS": windowed,
                "pubsubP50Ms": lat[len(lat) // 2],
                "pubsubP99Ms": lat[int(len(lat) * 0.99)],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
