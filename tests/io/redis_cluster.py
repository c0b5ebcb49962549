"""A real Redis 7 cluster for tests: 3 masters, no replicas, on free 127.0.0.1 ports.

Needs a Redis >= 7 ``redis-server`` (sharded pub/sub): ``$GOOMERANG_REDIS7`` or
``/usr/bin/redis-server``; ``scripts/ensure-redis7.sh`` (run by ``make test``)
installs Debian's when missing and it can. Each node keeps its ``nodes.conf``
in its own directory, so a killed master restarts into the same cluster.
Every wait polls a condition with a deadline (no bare sleeps).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

REDIS7 = os.environ.get("GOOMERANG_REDIS7", "/usr/bin/redis-server")


def redis7_missing() -> str | None:
    """Why a Redis 7 cluster cannot run here, or None when it can."""
    if not (os.path.isfile(REDIS7) and os.access(REDIS7, os.X_OK)):
        return (
            f"no redis-server at {REDIS7}: run scripts/ensure-redis7.sh (or set GOOMERANG_REDIS7)"
        )
    out = subprocess.run([REDIS7, "--version"], capture_output=True, text=True).stdout
    version = out.split("v=", 1)[1].split()[0] if "v=" in out else "?"
    if not version.split(".")[0].isdigit() or int(version.split(".")[0]) < 7:
        return f"{REDIS7} is Redis {version}; sharded pub/sub needs Redis >= 7"
    return None


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        # cluster bus ports are port + 10000: keep them below 65536
        ports = [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()
    if any(p + 10000 > 65535 for p in ports):
        return _free_ports_low(n)
    return ports


def _free_ports_low(n: int) -> list[int]:
    ports: list[int] = []
    candidate = 20000 + (os.getpid() % 20000)
    while len(ports) < n:
        candidate += 1
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", candidate))
                b.bind(("127.0.0.1", candidate + 10000))
            except OSError:
                continue
        ports.append(candidate)
    return ports


def _cli(port: int, *args: str, timeout: float = 5.0) -> str:
    cli = str(Path(REDIS7).with_name("redis-cli"))
    proc = subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.stdout


class RedisCluster:
    """``with RedisCluster() as c: c.url, c.kill(i), c.restart(i)``."""

    def __init__(self, masters: int = 3, node_timeout_ms: int = 1000) -> None:
        self.ports = _free_ports(masters)
        self.node_timeout_ms = node_timeout_ms
        self.base = tempfile.mkdtemp(prefix="goomerang-cluster-")
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * masters
        # set whenever a node writes a log line (ready, cluster state changed, failover):
        # the waits below re-check the cluster's state on it
        self._logged = threading.Event()

    @property
    def url(self) -> str:
        """A redis:// URL of the first node (a cluster client discovers the others)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.ports]

    def _start(self, i: int) -> None:
        port = self.ports[i]
        d = os.path.join(self.base, str(port))
        os.makedirs(d, exist_ok=True)
        self.procs[i] = subprocess.Popen(
            [
                REDIS7,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "no",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                d,
                "--logfile",
                "",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._follow, args=(self.procs[i],), daemon=True).start()
        self._wait(lambda: _cli(port, "PING").strip() == "PONG", 10, f"node {port} up")

    def _follow(self, proc: subprocess.Popen[bytes]) -> None:
        """Read a node's log (``--logfile ""``: stdout) until it exits; each line is an event."""
        assert proc.stdout is not None
        for _line in proc.stdout:
            self._logged.set()
        self._logged.set()  # it exited

    def start(self) -> None:
        for i in range(len(self.ports)):
            self._start(i)
        cli = str(Path(REDIS7).with_name("redis-cli"))
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *self.addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        self.wait_ok()

    def state_ok(self) -> bool:
        """Every node up and reporting ``cluster_state:ok`` and all slots assigned."""
        for port, proc in zip(self.ports, self.procs, strict=True):
            if proc is None or proc.poll() is not None:
                return False
            info = _cli(port, "CLUSTER", "INFO")
            if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
                return False
        return True

    def wait_ok(self, timeout: float = 30.0) -> None:
        self._wait(self.state_ok, timeout, "cluster_state:ok on every node")

    def kill(self, i: int) -> None:
        """SIGKILL master ``i`` (its nodes.conf stays)."""
        proc = self.procs[i]
        if proc is not None:
            proc.kill()
            proc.wait(10)
        self.procs[i] = None

    def restart(self, i: int) -> None:
        """Start master ``i`` again from its nodes.conf and wait for the cluster."""
        self._start(i)
        self.wait_ok()

    def slot_owner(self, slot: int) -> int:
        """Index of the master serving ``slot``."""
        for line in _cli(self.ports[0], "CLUSTER", "NODES").splitlines():
            parts = line.split()
            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            for rng in parts[8:]:
                lo, _, hi = rng.partition("-")
                if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                    return self.ports.index(port)
        raise LookupError(slot)

    def _wait(self, pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        """Until ``pred()``: checked again whenever a node logs something (its state may
        have changed), at least every second, for ``timeout`` seconds at most."""
        deadline = time.monotonic() + timeout
        while True:
            self._logged.clear()
            if pred():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"timed out waiting for {what}")
            self._logged.wait(min(left, 1.0))

    def close(self) -> None:
        for i in range(len(self.procs)):
            self.kill(i)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> RedisCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
