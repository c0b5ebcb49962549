"""Queue groups across workers: the embedded hub picks one member per group over all workers."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from test_backplane_local import HubThread, hub_path, loop_kind, nodes, run
from test_workers import Peer, Workers, connect

from goomerang_io.loop import run as loop_run
from goomerang_proto import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

__all__ = ["hub_path", "loop_kind"]  # pytest fixtures imported from test_backplane_local


def test_hub_sends_each_group_message_to_one_worker_weighted_by_members(
    hub_path: str, loop_kind: str
) -> None:
    hub = HubThread(hub_path)

    async def body() -> None:
        a, b, c = await nodes(hub_path, "a", "b", "c")
        await a.bp.join("jobs", "g")  # a: 1 member, b: 2 members, c: publisher, plain
        await b.bp.join("jobs", "g")
        await b.bp.join("jobs", "g")
        await c.bp.subscribe("jobs")
        for i in range(30):
            await c.bp.publish("jobs", "k", f"j{i}".encode())
        await c.bp.broadcast("k", b"fence")
        await a.wait_for(b"fence")
        await b.wait_for(b"fence")
        got_a = [m for m in a.inbox if m.topic == "jobs"]
        got_b = [m for m in b.inbox if m.topic == "jobs"]
        assert (len(got_a), len(got_b)) == (10, 20)  # 1 : 2, as the members
        assert sorted(m.frame for m in got_a + got_b) == sorted(f"j{i}".encode() for i in range(30))
        assert all(m.groups == ("g",) and m.groups_only for m in got_a + got_b)
        assert c.frames() == []  # the publisher's plain interest is served locally
        # the publisher's own group member is chosen too: through the hub, not dropped
        await c.bp.join("jobs", "g")
        for i in range(8):
            await c.bp.publish("jobs", "k", f"k{i}".encode())
        await c.bp.broadcast("k", b"fence2")
        await a.wait_for(b"fence2")
        await b.wait_for(b"fence2")
        await c.bp.subscribe("sync")  # its acknowledgement follows c's share on c's stream
        ks = [m for n in (a, b, c) for m in n.inbox if m.frame.startswith(b"k")]
        assert sorted(m.frame for m in ks) == sorted(f"k{i}".encode() for i in range(8))
        mine = [m for m in c.inbox if m.frame.startswith(b"k")]
        assert len(mine) == 2  # 1 member of 4 -> a quarter of the turns
        assert all(m.groups_only and m.origin == "c" for m in mine)
        # a member on b leaves, then b disconnects: the hub forgets its members
        await b.bp.leave("jobs", "g")
        await b.bp.close()
        await a.bp.publish("jobs", "k", b"after")
        await a.bp.broadcast("k", b"fence3")
        await c.wait_for(b"fence3")
        status = hub.hub.status()
        assert status["groups"] == 1
        for node in (a, c):
            await node.bp.close()

    try:
        run(body, loop_kind)
    finally:
        hub.stop()


@pytest.fixture
def workers() -> Iterator[Workers]:
    server = Workers(2)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


async def _members_on_both_workers(addr: str) -> list[Peer]:
    """At least two connections on each of the two workers."""
    peers: list[Peer] = []
    while len(peers) < 40:
        peers.append(await connect(addr))
        per = Counter(p.pid for p in peers)
        if len(per) == 2 and min(per.values()) >= 2:
            break
    per = Counter(p.pid for p in peers)
    assert len(per) == 2 and min(per.values()) >= 2, per
    by_pid: dict[str, list[Peer]] = {}
    for p in peers:
        by_pid.setdefault(p.pid, []).append(p)
    chosen = [p for group in by_pid.values() for p in group[:2]]
    for p in peers:
        if p not in chosen:
            await p.client.close()
    return chosen


async def _drain(peers: list[Peer], want: int, deadline: float) -> list[list[str]]:
    """Read every peer's inbox until ``want`` messages arrived in all (bounded)."""
    got: list[list[str]] = [[] for _ in peers]
    while sum(len(g) for g in got) < want and time.monotonic() < deadline:
        for i, p in enumerate(peers):
            while not p.inbox.empty():
                got[i].append(p.inbox.get_nowait())
        if sum(len(g) for g in got) < want:
            waits = [asyncio.ensure_future(p.inbox.get()) for p in peers]
            done, pending = await asyncio.wait(waits, timeout=1.0, return_when="FIRST_COMPLETED")
            for w in pending:
                w.cancel()
            for i, w in enumerate(waits):
                if w in done:
                    got[i].append(w.result())
    return got


@pytest.mark.timeout(90)
def test_exactly_one_member_per_group_over_two_workers(workers: Workers) -> None:
    async def main() -> None:
        members = await _members_on_both_workers(workers.addr)
        publisher = members[0].client  # a member too: its own worker must not pick locally
        for p in members:
            await p.client.subscribe("jobs", group="g")
        # joins travel worker -> hub without an acknowledgement to the client:
        # probe until the probes reach members on both workers
        deadline = time.monotonic() + 20
        seen_pids: set[str] = set()
        n = 0
        while len(seen_pids) < 2 and time.monotonic() < deadline:
            n += 1
            await publisher.publish("jobs", Message(MessageV1(message=f"probe-{n}")))
            got = await _drain(members, 1, time.monotonic() + 1.0)
            seen_pids |= {members[i].pid for i, g in enumerate(got) if g}
        assert len(seen_pids) == 2, "group messages never reached both workers"
        await _drain(members, 10**9, time.monotonic() + 1.0)  # swallow late probes
        total = 400
        for i in range(total):
            await publisher.publish("jobs", Message(MessageV1(message=f"m{i}")))
        got = await _drain(members, total, time.monotonic() + 20)
        # a fence broadcast: anything in flight (a duplicate) lands before it
        await publisher.broadcast(Message(MessageV1(message="fence")))
        for i, p in enumerate(members):
            while (m := await p.next(timeout=10)) != "fence":
                got[i].append(m)
        flat = [m for g in got for m in g if m.startswith("m")]
        assert len(flat) == total and sorted(flat) == sorted(f"m{i}" for i in range(total))
        shares = [len([m for m in g if m.startswith("m")]) / total for g in got]
        print("group shares over 2 workers x 2 members:", shares)
        assert min(shares) >= 0.2 and max(shares) <= 0.3, shares  # 0.25 each, round robin
        for p in members:
            await p.client.close()

    loop_run(main())
    assert workers.stop() == 0


def test_group_members_are_re_announced_after_a_hub_restart(hub_path: str, loop_kind: str) -> None:
    hub = HubThread(hub_path)

    async def body() -> None:
        nonlocal hub
        a, b, c = await nodes(hub_path, "a", "b", "c")
        await a.bp.join("jobs", "g")
        await b.bp.join("jobs", "g")
        await b.bp.join("jobs", "g")
        await b.bp.leave("jobs", "g")  # b: 1 member left
        hub.stop()
        await a.wait_error()
        hub = HubThread(hub_path)  # a new hub knows nothing until the workers re-announce
        for node in (a, b, c):
            await asyncio.wait_for(node.bp.wait_connected(), 5.0)
        for i in range(10):
            await c.bp.publish("jobs", "k", f"r{i}".encode())
        await c.bp.broadcast("k", b"fence")
        await a.wait_for(b"fence")
        await b.wait_for(b"fence")
        got_a = [m.frame for m in a.inbox if m.frame.startswith(b"r")]
        got_b = [m.frame for m in b.inbox if m.frame.startswith(b"r")]
        assert (len(got_a), len(got_b)) == (5, 5)  # 1 member each after the restart
        assert sorted(got_a + got_b) == sorted(f"r{i}".encode() for i in range(10))
        for node in (a, b, c):
            await node.bp.close()

    try:
        run(body, loop_kind)
    finally:
        hub.stop()
