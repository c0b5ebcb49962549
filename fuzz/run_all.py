"""Run every atheris fuzz target in fuzz/ for N seconds each; exit non-zero on a crash.

Usage: ``python fuzz/run_all.py --seconds 30 [--only NAME]`` (``make fuzz``).
Each target runs in its own subprocess with ``-max_total_time=N``; its corpus
lives in ``.fuzz-corpus/<target>/`` (seeded from the target's ``seeds()``),
crash inputs land in ``.fuzz-corpus/artifacts/``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = ROOT / ".fuzz-corpus"


def targets() -> list[Path]:
    """Every ``fuzz_*.py`` target next to this script."""
    return sorted(HERE.glob("fuzz_*.py"))


def _seed(target: Path, corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    spec = importlib.util.spec_from_file_location(f"_seed_{target.stem}", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for data in getattr(module, "seeds", list)():
        (corpus / hashlib.sha1(data).hexdigest()).write_bytes(data)


def run(target: Path, seconds: int) -> int:
    """Fuzz ``target`` for ``seconds``; return its exit status (0: no crash)."""
    corpus = CORPUS / target.stem
    artifacts = CORPUS / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    _seed(target, corpus)
    cmd = [
        sys.executable,
        str(target),
        str(corpus),
        f"-max_total_time={seconds}",
        "-timeout=10",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={artifacts}/{target.stem}-",
        "-print_final_stats=1",
    ]
    print(f"== {target.name}: {seconds}s", flush=True)
    try:
        proc = subprocess.run(cmd, cwd=ROOT, timeout=seconds + 120, check=False)
    except subprocess.TimeoutExpired:
        print(f"!! {target.name}: did not stop within {seconds + 120}s", flush=True)
        return 124
    status = "ok" if proc.returncode == 0 else f"CRASH (exit {proc.returncode})"
    print(f"== {target.name}: {status}", flush=True)
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the targets, return 1 if any crashed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30, help="fuzzing time per target")
    parser.add_argument("--only", action="append", help="run only this target (repeatable)")
    args = parser.parse_args(argv)
    if args.seconds < 1:
        parser.error("--seconds must be at least 1")
    chosen = [t for t in targets() if not args.only or t.stem in args.only or t.name in args.only]
    if not chosen:
        parser.error(f"no target matches {args.only}")
    failed = [t.name for t in chosen if run(t, args.seconds) != 0]
    if failed:
        print(f"crashed: {', '.join(failed)} (inputs in {CORPUS / 'artifacts'})", flush=True)
        return 1
    print(f"all {len(chosen)} targets ran {args.seconds}s without a crash", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
