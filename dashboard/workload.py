#!/usr/bin/env python3
"""A real goomerang run to draw the dashboard from: ``python dashboard/workload.py``.

One process: a metered :class:`goomerang_io.Server` and metered clients on
127.0.0.1. The server and each client have a registry of their own, each
exposed by prometheus_client's HTTP server on a port of its own (one scrape
target each, as separate processes would be; scrapes go on while the
goomerang server shuts down and its status reaches CLOSED). A thread scrapes
every endpoint over HTTP once a second while the workload runs its phases:

1. clients connect one by one;
2. steady traffic: echoed sends, sync requests, publishes to two topics
   with subscribe/unsubscribe churn, client broadcasts; the handler is
   deliberately slow for one header (a random sleep of up to 20 ms, so the
   processing-time panel has a shape) and raises for another (server errors);
3. half of the clients leave; traffic goes on;
4. the server shuts down (status CLOSING, then CLOSED).

Then :mod:`render` draws ``dashboard/goomerang-dashboard.png`` from the
scrapes (kept in ``--save-scrapes``). Bounded in time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import render  # noqa: E402
from prometheus_client import CollectorRegistry, start_http_server  # noqa: E402

from goomerang_io import Client, Server  # noqa: E402
from goomerang_io.metrics import ClientMetrics, ServerMetrics  # noqa: E402
from goomerang_proto import Message  # noqa: E402
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1  # noqa: E402


async def workload(
    regs: list[CollectorRegistry], seconds: float, rate: float, started: threading.Event
) -> None:
    """Run the phases above; ``regs[0]`` is the server's registry, one more per client.

    ``rate`` is messages per second per client (each client stops after
    ``2 * seconds * rate`` messages at most).
    """
    n_clients = len(regs) - 1
    server = Server("127.0.0.1:0", metrics=ServerMetrics(registry=regs[0]))
    server_errors: list[BaseException] = []
    server.on_error(server_errors.append)  # counted by the metrics; kept quiet here

    async def on_message(sender: Any, message: Message[Any]) -> None:
        if message.headers.get("slow"):
            await asyncio.sleep(random.random() * 0.02)  # deliberately slow handler
        if message.headers.get("fail"):
            raise RuntimeError("handler failure requested by the workload")
        if message.is_sync:
            await sender.send(Message(ReplyV1(message=message.payload.message)))
        elif message.headers.get("echo"):
            await sender.send(Message(message.payload, {"echo": "1"}))

    server.handle(MessageV1, on_message)
    server.register_message(ReplyV1)
    started.wait(10)  # the scraper is running: the NEW -> RUNNING step is on the chart
    await asyncio.sleep(2)
    await server.start()
    clients: list[Client] = []
    errors: list[BaseException] = []
    for reg in regs[1:]:
        c = Client(server.addr, metrics=ClientMetrics(registry=reg), on_error=[errors.append])
        c.handle(MessageV1, lambda _s, _m: None)
        c.register_message(ReplyV1)
        await c.connect()
        clients.append(c)
        await asyncio.sleep(0.5)

    stop = asyncio.Event()

    async def drive(i: int, c: Client) -> None:
        rnd = random.Random(i)
        n = 0
        while not stop.is_set() and n < int(seconds * rate * 2):
            n += 1
            body = MessageV1(message="x" * rnd.choice((5, 40, 200, 900)))
            roll = rnd.random()
            try:
                if roll < 0.45:
                    headers = {"echo": "1"}
                    if rnd.random() < 0.3:
                        headers["slow"] = "1"
                    if rnd.random() < 0.01:
                        headers["fail"] = "1"
                    await c.send(Message(body, headers))
                elif roll < 0.75:
                    await c.send_sync(Message(body, {"slow": "1"} if roll < 0.6 else {}), timeout=5)
                elif roll < 0.9:
                    await c.publish(rnd.choice(("news", "sports")), Message(body))
                elif roll < 0.95:
                    topic = rnd.choice(("news", "sports"))
                    await c.subscribe(topic)
                    if rnd.random() < 0.5:
                        await c.unsubscribe(topic)
                else:
                    await c.broadcast(Message(MessageV1(message="hi all")))
            except Exception as exc:  # a client that went away mid-call
                errors.append(exc)
                return
            await asyncio.sleep(rnd.expovariate(rate))

    tasks = [asyncio.ensure_future(drive(i, c)) for i, c in enumerate(clients)]
    await asyncio.sleep(seconds * 0.6)
    leaving = clients[: n_clients // 2]
    for c, t in zip(leaving, tasks, strict=False):
        t.cancel()
        await c.close()
        await asyncio.sleep(0.3)
    await asyncio.sleep(seconds * 0.4)
    stop.set()
    await asyncio.wait(tasks, timeout=10)
    await server.shutdown(timeout=5)
    for c in clients[n_clients // 2 :]:
        try:
            await c.close()
        except Exception as exc:
            errors.append(exc)
    kinds = sorted({type(e).__name__ for e in errors})
    print(
        f"workload done: {len(server_errors)} server errors, "
        f"{len(errors)} client-side errors {kinds}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the workload while scraping it, then render the PNG."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=40.0, help="length of the traffic phase")
    ap.add_argument("--rate", type=float, default=150.0, help="messages/s per client")
    ap.add_argument("--save-scrapes", type=Path, default=Path("/tmp/goomerang-scrapes"))
    ap.add_argument("--out", type=Path, default=HERE / "goomerang-dashboard.png")
    args = ap.parse_args(argv)

    # The server and each client are scrape targets of their own, as they
    # would be in production (one process each).
    regs = [CollectorRegistry() for _ in range(args.clients + 1)]
    httpds = [start_http_server(0, addr="127.0.0.1", registry=r)[0] for r in regs]
    urls = [f"http://127.0.0.1:{h.server_port}/metrics" for h in httpds]
    total = int(args.seconds + args.clients * 0.8 + 10)
    scrapes: list[render.Scrape] = []
    started = threading.Event()

    def scrape() -> None:
        started.set()
        scrapes.extend(render.collect(urls, total, 1.0, args.save_scrapes))

    t = threading.Thread(target=scrape, daemon=True)
    t.start()
    t0 = time.time()
    asyncio.run(workload(regs, args.seconds, args.rate, started))
    t.join(timeout=total + 30)
    for h in httpds:
        h.shutdown()
    print(f"{len(scrapes)} scrapes of {len(urls)} endpoints over {time.time() - t0:.0f} s")
    render.render(
        scrapes,
        args.out,
        f"goomerang: {args.clients} clients, {args.seconds:.0f} s of traffic, one server "
        f"(rendered from {len(scrapes)} real scrapes)",
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
