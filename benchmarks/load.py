"""Run gmrload (pinned with taskset) and read its one-line JSON result.

:func:`run_gmrload` runs one client; :func:`run_parallel` runs several at once
(pinned round-robin over the client CPUs) and sums their rates, which is the
server's capacity while all of them were busy even when SO_REUSEPORT spreads
their connections unevenly over the workers.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from procs import pinned

Result = dict[str, Any]


def gmrload_argv(binary: Path, port: int, mode: str, n: int, args: Sequence[str]) -> list[str]:
    """The gmrload command line for one run (timeouts bound the measured phase)."""
    return [str(binary), "--port", str(port), "--mode", mode, "--n", str(n), *args]


def _parse(out: str, err: str, rc: int) -> Result:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            result: Result = json.loads(line)
            result["rc"] = rc
            return result
    return {"ok": False, "error": f"no JSON line (rc {rc}): {err.strip()[-300:]}", "rc": rc}


def run_gmrload(argv: Sequence[str], cpus: str | None, wall_timeout: float) -> Result:
    """Run one gmrload and return its JSON result (``ok`` false on any failure)."""
    try:
        proc = subprocess.run(
            pinned(argv, cpus), capture_output=True, text=True, timeout=wall_timeout
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"gmrload ran over {wall_timeout:.0f} s", "rc": -1}
    return _parse(proc.stdout, proc.stderr, proc.returncode)


def run_parallel(
    argvs: Sequence[Sequence[str]], cpu_list: Sequence[int], wall_timeout: float
) -> list[Result]:
    """Run several gmrload processes at once, pinned round-robin over ``cpu_list``."""
    procs = []
    for i, argv in enumerate(argvs):
        cpus = str(cpu_list[i % len(cpu_list)]) if cpu_list else None
        procs.append(
            subprocess.Popen(
                pinned(argv, cpus), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=wall_timeout)
            results.append(_parse(out, err, p.returncode))
        except subprocess.TimeoutExpired:
            p.kill()  # a client we started, by its Popen handle
            p.communicate()
            results.append({"ok": False, "error": f"gmrload ran over {wall_timeout:.0f} s"})
    return results


def combine(results: Sequence[Result], strict: bool = True) -> Result:
    """One result for parallel clients: rates and client CPU summed, steal at its worst.

    ``strict=False`` accepts runs that got more frames than they expected (parallel
    broadcast clients also receive each other's broadcasts) as long as none had errors.
    """
    if not results:
        return {"ok": False, "error": "no clients"}
    bad = [
        r
        for r in results
        if not (
            r.get("ok")
            or (
                not strict
                and r.get("errors", 1) == 0
                and r.get("received", 0) >= r.get("expected", r.get("n", 1))
            )
        )
    ]
    out: Result = {
        "ok": not bad,
        "error": bad[0].get("error", "") if bad else "",
        "clients": len(results),
        "rate": sum(float(r.get("rate", 0.0)) for r in results),
        "received": sum(int(r.get("received", 0)) for r in results),
        "seconds": max(float(r.get("seconds", 0.0)) for r in results),
        "client_cpu_pct": sum(float(r.get("client_cpu_pct", 0.0)) for r in results),
        "server_cpu_pct": max(float(r.get("server_cpu_pct", -1.0)) for r in results),
        "steal_pct": max(float(r.get("steal_pct", 0.0)) for r in results),
    }
    return out
