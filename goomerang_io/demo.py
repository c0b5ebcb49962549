"""``goomerang demo``: a real multi-worker server and clients exercising every feature.

The server runs as a separate process (``python -m goomerang_io.demo serve``)
with N worker processes; the clients run here. Everything is on 127.0.0.1,
bounded in count and time, and ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from functools import partial
from typing import Any

from goomerang_proto import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

from .asyncio.client import Client
from .asyncio.server import Server
from .loop import run as run_loop
from .sender import Sender


# ----------------------------------------------------------------- server side
def build_server(listen: str, workers: int) -> Server:
    """The demo server: echo, a sync 'whoami' answering with the worker's pid, routes."""
    server = Server(listen, workers=workers)

    def on_message(sender: Sender, message: Message[Any]) -> None:
        if message.is_sync:
            reply = Message(
                ReplyV1(message=message.payload.message), {"worker-pid": str(os.getpid())}
            )
            sender.send(reply)
        else:
            sender.send(Message(message.payload, message.headers))

    server.handle(MessageV1, on_message)
    server.register_message(ReplyV1)
    server.route("/health", lambda _req: f"ok pid={os.getpid()}\n")
    try:
        if workers > 1:
            from .metrics import prepare_multiprocess_dir

            prepare_multiprocess_dir()
        from .http import Response
        from .metrics import ServerMetrics, metrics_http_response

        server.metrics = ServerMetrics()

        def metrics_route(_req: Any) -> Response:
            status, headers, body = metrics_http_response()
            return Response(status, body, tuple(headers))

        server.route("/metrics", metrics_route)
    except ImportError:  # pragma: no cover - metrics are optional for the demo
        pass
    return server


def serve_main(argv: list[str]) -> int:
    """Entry point of the demo's server process."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    server = build_server(args.listen, args.workers)
    return server.run()


# ----------------------------------------------------------------- client side
def _enqueue(queue: asyncio.Queue[Message[Any]], _sender: Sender, message: Message[Any]) -> None:
    queue.put_nowait(message)


def _say(text: str) -> None:
    print(text, flush=True)


async def _clients_demo(addr: str, n_clients: int, n_messages: int) -> dict[str, float]:
    rates: dict[str, float] = {}
    inboxes: list[asyncio.Queue[Message[Any]]] = []
    clients: list[Client] = []
    errors: list[BaseException] = []
    closes: list[int | None] = []
    for _ in range(n_clients):
        inbox: asyncio.Queue[Message[Any]] = asyncio.Queue()
        client = Client(addr, on_error=[errors.append])
        client.handle(MessageV1, partial(_enqueue, inbox))
        client.register_message(ReplyV1)
        await client.connect()
        clients.append(client)
        inboxes.append(inbox)
    _say(f"[connect] {n_clients} clients connected to ws://{addr}/ws")

    # Which worker serves which client: a sync request answered with the worker's pid.
    pids = []
    for i, client in enumerate(clients):
        reply = await client.send_sync(Message(MessageV1(message=f"whoami {i}")), timeout=5)
        pids.append(reply.headers["worker-pid"])
    by_worker = Counter(pids)
    _say(f"[send_sync] client -> worker pid: {pids} ({len(by_worker)} distinct workers)")

    # Pipelined sends echoed back by a handler.
    c0, q0 = clients[0], inboxes[0]
    t0 = time.perf_counter()
    for i in range(n_messages):
        await c0.send(Message(MessageV1(message=f"m{i}"), {"seq": str(i)}))
    for i in range(n_messages):
        got = await asyncio.wait_for(q0.get(), 10)
        assert got.headers["seq"] == str(i), "echo out of order"
    dt = time.perf_counter() - t0
    rates["send+echo msg/s"] = n_messages / dt
    _say(f"[send] {n_messages} messages echoed in order: {n_messages / dt:,.0f} msg/s")

    # Concurrent sync requests, each reply to its caller.
    n_sync = max(100, n_messages // 4)
    t0 = time.perf_counter()
    replies = await asyncio.gather(
        *(c0.send_sync(Message(MessageV1(message=f"s{i}")), timeout=10) for i in range(n_sync))
    )
    dt = time.perf_counter() - t0
    assert [r.payload.message for r in replies] == [f"s{i}" for i in range(n_sync)]
    rates["send_sync req/s"] = n_sync / dt
    _say(
        f"[send_sync] {n_sync} concurrent requests, each reply to its caller: "
        f"{n_sync / dt:,.0f} req/s"
    )

    # Publish/subscribe across workers.
    subscribers = clients[1::2]
    for client in subscribers:
        await client.subscribe("news")
    # A subscriber's own worker knows at once; the other workers learn of it a moment
    # later (through the hub). So publish probes until every subscriber got one (at most
    # 10 s), then the real message: it follows the probes on the same path, so once it
    # arrived no probe is left in flight behind it.
    waiting = {i for i, client in enumerate(clients) if client in subscribers}
    deadline = time.monotonic() + 10
    probes = 0
    while waiting and time.monotonic() < deadline:
        probes += 1
        await clients[0].publish("news", Message(MessageV1(message=f"probe-{probes}")))
        for i in sorted(waiting):
            try:
                await asyncio.wait_for(inboxes[i].get(), 0.5)
            except TimeoutError:
                continue
            waiting.discard(i)
    if waiting:
        raise RuntimeError(f"subscribers {sorted(waiting)} got no publish in 10 s")
    await clients[0].publish("news", Message(MessageV1(message="extra! extra!"), {"topic": "news"}))
    got_pub = []
    for i, client in enumerate(clients):
        if client in subscribers:
            msg = await asyncio.wait_for(inboxes[i].get(), 5)
            while msg.payload.message.startswith("probe-"):  # later copies of the probes
                msg = await asyncio.wait_for(inboxes[i].get(), 5)
            got_pub.append((i, pids[i], msg.payload.message))
    _say(
        f"[publish] 'news' reached {len(got_pub)}/{len(subscribers)} subscribers on workers "
        f"{sorted({p for _, p, _ in got_pub})}"
    )

    # Broadcast from one client to every client on every worker (the sender included).
    await clients[-1].broadcast(Message(MessageV1(message="hello everyone"), {"from": "last"}))
    got_bc = 0
    for inbox in inboxes:
        msg = await asyncio.wait_for(inbox.get(), 5)
        assert msg.payload.message == "hello everyone" and msg.headers == {"from": "last"}
        got_bc += 1
    _say(f"[broadcast] reached {got_bc}/{n_clients} clients across {len(by_worker)} workers")

    # Broadcast fan-out rate.
    n_bc = max(50, n_messages // 100)
    t0 = time.perf_counter()
    for i in range(n_bc):
        await clients[0].broadcast(Message(MessageV1(message=f"b{i}")))
    for inbox in inboxes:
        for _ in range(n_bc):
            await asyncio.wait_for(inbox.get(), 10)
    dt = time.perf_counter() - t0
    rates["broadcast deliveries/s"] = n_bc * n_clients / dt
    _say(
        f"[broadcast] {n_bc} broadcasts x {n_clients} clients: "
        f"{n_bc * n_clients / dt:,.0f} deliveries/s"
    )

    for client in clients:
        client.add_hook("on_close", lambda c=client: closes.append(c.close_code))
    rates["_errors"] = float(len(errors))
    return rates


def _http_get(addr: str, path: str) -> str:
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=5) as resp:
        return str(resp.read().decode("utf-8", "replace"))


def main(args: argparse.Namespace) -> int:
    """Run the whole demo; returns the exit code."""
    workers = getattr(args, "workers", 2)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "goomerang_io.demo", "serve", "--workers", str(workers)]
    _say(f"[server] starting: {' '.join(cmd[1:])}")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert proc.stdout is not None
    addr = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        _say(f"  server| {line.rstrip()}")
        match = re.search(r"listening on wss?://([^/\s]+)/", line)
        if match:
            addr = match.group(1)
            break
    if addr is None:
        proc.kill()
        _say("[server] did not start")
        return 1
    code = 1
    try:
        _say(f"[http] GET /health -> {_http_get(addr, '/health').strip()}")
        rates = run_loop(_clients_demo(addr, args.clients, args.messages))
        try:
            scrape = _http_get(addr, "/metrics")
            lines = [ln for ln in scrape.splitlines() if ln.startswith("goomerang_server_")]
            _say(f"[metrics] GET /metrics: {len(lines)} goomerang_server_* samples, e.g.:")
            for ln in [x for x in lines if "_count" in x or "_total" in x][:6]:
                _say(f"    {ln}")
        except OSError as exc:
            _say(f"[metrics] not available: {exc}")
        errors = int(rates.pop("_errors"))
        _say(f"[errors] {errors} errors reported by the clients' on_error hooks")
        code = 0 if errors == 0 else 1
    finally:
        _say("[shutdown] SIGTERM to the server: graceful shutdown")
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
            for line in out.splitlines():
                _say(f"  server| {line}")
        except subprocess.TimeoutExpired:
            proc.kill()
            _say("[shutdown] server did not stop in time; killed")
            code = 1
    _say(f"[shutdown] server exited with {proc.returncode}")
    if proc.returncode != 0:
        code = 1
    _say("demo " + ("finished OK" if code == 0 else "FAILED"))
    return code


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve_main(sys.argv[2:]))
    sys.exit(main(argparse.Namespace(workers=2, clients=4, messages=20000)))
