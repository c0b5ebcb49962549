"""One measurement: a fresh server, one load (or idle connections), the server stopped by PID.

A :class:`Job` says what to start, where to pin it, and which load to put on
it; :func:`run_job` does it once and returns a flat result dict
(``ok``, ``rate``, latency, CPU, steal, or memory per connection). Rows are
lists of jobs; the harness runs every job of a group once per rep, so reps of
the compared servers interleave.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load import Result, combine, gmrload_argv, run_gmrload, run_parallel
from procs import Server, pinned, settle_rss, start_server
from servers import HERE, PY, ServerSpec


@dataclass
class Job:
    """One configuration of one server in one row group."""

    group: str  # pipe, rr_same, rr_split, conc, bcast, workers, memory
    variant: str  # e.g. "500 rcv", "w2", "10000 conns"
    server: ServerSpec
    server_cpus: str
    client_cpus: list[int]
    mode: str = "pipe"  # gmrload mode, or "idle" for the memory rows
    n: int = 0  # gmrload --n per client, or idle connections
    args: tuple[str, ...] = ()
    clients: int = 1  # parallel gmrload processes
    timeout: float = 60.0  # gmrload --timeout (measured phase)
    strict: bool = True
    order: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        """(group, variant, server name): what the reps of this job are grouped by."""
        return (self.group, self.variant, self.server.name)


def _load(job: Job, server: Server, binary: Path) -> Result:
    args = [*job.server.client_args, *job.args, "--timeout", str(job.timeout)]
    args += ["--idle-timeout", "10", "--label", f"{job.group}:{job.server.name}"]
    if job.clients == 1:
        args += ["--server-pid", str(server.pid)]
        argv = gmrload_argv(binary, server.port, job.mode, job.n, args)
        cpus = ",".join(map(str, job.client_cpus))
        return run_gmrload(argv, cpus, job.timeout + 30)
    argvs = [gmrload_argv(binary, server.port, job.mode, job.n, args)] * job.clients
    return combine(run_parallel(argvs, job.client_cpus, job.timeout + 30), strict=job.strict)


def _idle(job: Job, server: Server) -> Result:
    base = settle_rss(server)
    argv = [PY, str(HERE / "idle_clients.py"), "--port", str(server.port)]
    argv += ["--conns", str(job.n), "--proto", job.server.idle_proto]
    argv += ["--path", job.server.idle_path, "--hold", str(job.timeout + 60)]
    cpus = ",".join(map(str, job.client_cpus))
    client = subprocess.Popen(
        pinned(argv, cpus), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert client.stdout is not None
        t0 = time.monotonic()
        line = client.stdout.readline().strip()  # bounded: the client's --open-timeout
        opened = time.monotonic() - t0
        if not line.startswith("ready"):
            return {"ok": False, "error": f"idle clients: {line or 'no output'}"}
        rss = settle_rss(server)
    finally:
        if client.stdin is not None:
            client.stdin.close()  # tells the client to close its connections
        try:
            client.wait(30)
        except subprocess.TimeoutExpired:
            client.kill()  # the client we started, by its Popen handle
            client.wait(5)
    per_conn = (rss - base) / job.n
    return {
        "ok": True,
        "rss_base_kib": base,
        "rss_kib": rss,
        "kib_per_conn": per_conn,
        "open_seconds": opened,
        "steal_pct": 0.0,
    }


def run_job(job: Job, binary: Path) -> Result:
    """Start a fresh server, measure once, stop it by PID; never raises for a bad run."""
    try:
        server = start_server(job.server.name, job.server.argv, job.server_cpus)
    except Exception as exc:
        return {"ok": False, "error": f"start: {exc}"}
    try:
        result = _idle(job, server) if job.mode == "idle" else _load(job, server, binary)
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        graceful = server.stop()
    result["server_graceful"] = graceful
    if not graceful:
        result.setdefault("notes", []).append("server needed SIGTERM/SIGKILL")
    return result
