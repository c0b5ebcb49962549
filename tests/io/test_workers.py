"""Multi-worker server end to end: real processes (the demo server, 2 workers), real sockets.

Clients are told apart by worker with a sync request that the server answers
with the worker's pid (header ``worker-pid``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from goomerang_io import Client
from goomerang_io.loop import run
from goomerang_proto import GoomerangError, Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """The demo server with N workers in a child process."""

    def __init__(self, workers: int = 2) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "goomerang_io.demo", "serve", "--workers", str(workers)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        assert self.proc.stdout is not None
        seen = []
        for line in self.proc.stdout:  # until the supervisor says all are ready
            seen.append(line)
            match = re.search(r"listening on ws://([^/\s]+)/ws", line)
            if match:
                break
        assert match, f"server did not start: {seen!r}"
        self.addr = match.group(1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture
def workers() -> Iterator[Workers]:
    server = Workers(2)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


class Peer:
    """A connected client with an inbox, and the pid of the worker serving it."""

    def __init__(self, client: Client, inbox: asyncio.Queue[str], pid: str) -> None:
        self.client = client
        self.inbox = inbox
        self.pid = pid

    async def next(self, timeout: float = 5.0) -> str:
        return await asyncio.wait_for(self.inbox.get(), timeout)


async def connect(addr: str) -> Peer:
    inbox: asyncio.Queue[str] = asyncio.Queue()
    client = Client(addr, heartbeat_interval=None)
    client.handle(MessageV1, lambda _s, m: inbox.put_nowait(m.payload.message))
    client.register_message(ReplyV1)
    await client.connect()
    reply = await client.send_sync(Message(MessageV1(message="whoami")), timeout=5)
    return Peer(client, inbox, reply.headers["worker-pid"])


async def peers_on_two_workers(addr: str, want: int = 6, limit: int = 40) -> list[Peer]:
    """Connect until at least two workers serve us (the kernel spreads connections)."""
    peers = [await connect(addr) for _ in range(want)]
    while len({p.pid for p in peers}) < 2 and len(peers) < limit:
        peers.append(await connect(addr))
    assert len({p.pid for p in peers}) >= 2, "all connections landed on one worker"
    return peers


async def until_all_received(peers: list[Peer], send: Any, tag: str) -> dict[int, list[str]]:
    """Send probes (``send(tag-N)``) until every peer got one; return what each received."""
    seen: dict[int, list[str]] = {i: [] for i in range(len(peers))}
    deadline = time.monotonic() + 15
    n = 0
    while time.monotonic() < deadline:
        n += 1
        await send(f"{tag}-{n}")
        for i, peer in enumerate(peers):
            with_probe = [m for m in seen[i] if m.startswith(tag)]
            while not with_probe:
                try:
                    msg = await peer.next(timeout=0.5)
                except TimeoutError:
                    break
                seen[i].append(msg)
                with_probe = [m for m in seen[i] if m.startswith(tag)]
        if all(any(m.startswith(tag) for m in got) for got in seen.values()):
            return seen
    raise AssertionError(f"probes {tag} never reached every peer: {seen}")


async def count_until_fence(peer: Peer, target: str, fence: str) -> int:
    """Read until ``fence`` arrives; return how many times ``target`` came before it."""
    count = 0
    while True:
        msg = await peer.next(timeout=10)
        if msg == fence:
            return count
        count += msg == target


@pytest.mark.timeout(90)
def test_broadcast_and_publish_reach_every_worker_exactly_once(workers: Workers) -> None:
    async def main() -> None:
        peers = await peers_on_two_workers(workers.addr)
        sender = peers[0].client
        # Broadcast: every client on every worker, the sender included, exactly once.
        await until_all_received(
            peers, lambda m: sender.broadcast(Message(MessageV1(message=m))), "bprobe"
        )
        await sender.broadcast(Message(MessageV1(message="target")))
        await sender.broadcast(Message(MessageV1(message="fence")))
        counts = [await count_until_fence(p, "target", "fence") for p in peers]
        assert counts == [1] * len(peers), counts

        # Publish: only subscribers, on both workers, exactly once.
        subs = [p for i, p in enumerate(peers) if i % 2 == 1]
        others = [p for i, p in enumerate(peers) if i % 2 == 0]
        assert len({p.pid for p in subs} | {p.pid for p in others}) >= 2
        for p in subs:
            await p.client.subscribe("t")
        publisher = others[0].client
        await until_all_received(
            subs, lambda m: publisher.publish("t", Message(MessageV1(message=m))), "pprobe"
        )
        await publisher.publish("t", Message(MessageV1(message="ptarget")))
        await publisher.publish("t", Message(MessageV1(message="pfence")))
        assert [await count_until_fence(p, "ptarget", "pfence") for p in subs] == [1] * len(subs)
        # Non-subscribers got no publish at all: a broadcast fence shows their inbox order.
        await sender.broadcast(Message(MessageV1(message="end")))
        for p in others:
            got = []
            while (msg := await p.next()) != "end":
                got.append(msg)
            assert not [m for m in got if m.startswith("p")], got
        for p in peers:
            await p.client.close()

    run(main())
    assert workers.stop() == 0


@pytest.mark.timeout(90)
def test_killed_worker_is_restarted_and_others_keep_serving(workers: Workers) -> None:
    async def main() -> None:
        peers = await peers_on_two_workers(workers.addr)
        victim = peers[0].pid
        survivors = [p for p in peers if p.pid != victim]
        os.kill(int(victim), signal.SIGKILL)
        for p in survivors:  # the other worker keeps working
            reply = await p.client.send_sync(Message(MessageV1(message="still here")), timeout=5)
            assert reply.payload.message == "still here"
        # New connections eventually reach a new worker (the restarted one).
        deadline = time.monotonic() + 30
        fresh = None
        while time.monotonic() < deadline:
            try:
                peer = await connect(workers.addr)
            except GoomerangError:
                # A connection queued on the killed worker's socket is reset by the
                # kernel (SO_REUSEPORT); a client simply connects again.
                continue
            await peer.client.close()
            if peer.pid not in {p.pid for p in peers}:
                fresh = peer.pid
                break
        assert fresh is not None, "the killed worker was not replaced"
        for p in survivors:
            await p.client.close()

    run(main())
    assert workers.stop() == 0


@pytest.mark.timeout(60)
def test_sigterm_closes_every_client_with_1000_and_exits_0(workers: Workers) -> None:
    async def main() -> None:
        peers = await peers_on_two_workers(workers.addr)
        closed = [asyncio.Event() for _ in peers]
        for p, ev in zip(peers, closed, strict=True):
            p.client.on_status_change(lambda s, ev=ev: ev.set() if s is Status.CLOSED else None)
        workers.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in closed)), 20)
        assert [p.client.close_code for p in peers] == [1000] * len(peers)

    run(main())
    assert workers.proc.wait(timeout=30) == 0


@pytest.mark.timeout(60)
def test_boot_failure_stops_the_supervisor_quickly(tmp_path: Path) -> None:
    script = tmp_path / "bad_boot.py"
    script.write_text(
        textwrap.dedent(
            """
            from goomerang_io import Server

            def boom(index):
                raise RuntimeError("cannot open the database")

            server = Server("127.0.0.1:0", workers=2)
            server.on_process_start(boom)
            raise SystemExit(server.run())
            """
        )
    )
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=50
    )
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 20
    assert "failed to boot" in proc.stderr and "cannot open the database" in proc.stderr
