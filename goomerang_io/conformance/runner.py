"""Runs the server cases against a target and collects a report.

Cases that need nothing but a URL run first, on one server (started again
only if a case took it down); then the ``managed`` cases (hostile input,
graceful shutdown), each on a server that came through the previous case
cleanly: after any verdict but OK, or when the process ended, the runner
starts a fresh one, so a peer that does not survive one case is judged
fairly on the next. With a bare URL the managed cases are NOT APPLICABLE.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from . import (  # noqa: F401
    cases_fanout,
    cases_frames,
    cases_golden,
    cases_handshake,
    cases_lifecycle,
    cases_messages,
)
from .peer import PeerClosed, PeerTimeout
from .suite import CASES, GROUPS, Case, Context, Outcome, Status, Verdict
from .target import Target


@dataclass
class CaseResult:
    """One case's verdict in a report."""

    id: str
    group: str
    title: str
    rule: str
    status: str
    summary: str
    details: list[str] = field(default_factory=list)
    expected: str = ""
    got: str = ""
    seconds: float = 0.0
    note: str = ""


@dataclass
class Report:
    """A whole run: what was tested, when, the verdicts and their counts."""

    mode: str
    target: str
    started: str
    seconds: float
    results: list[CaseResult]
    groups: dict[str, str] = field(default_factory=lambda: dict(GROUPS))
    """Group number -> title."""

    def counts(self) -> dict[str, int]:
        """How many cases got each verdict (every verdict listed, zeros included)."""
        out = {s.value: 0 for s in Status}
        for r in self.results:
            out[r.status] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "mode": self.mode,
            "target": self.target,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "counts": self.counts(),
            "groups": self.groups,
            "cases": [asdict(r) for r in self.results],
        }


def select(patterns: Iterable[str] | None) -> list[Case]:
    """Cases whose id equals a pattern or starts with ``pattern + '.'`` (all when None)."""
    cases = sorted(CASES.values(), key=lambda c: c.sort_key)
    pats = list(patterns or [])
    if not pats:
        return cases
    return [c for c in cases if any(c.id == p or c.id.startswith(p + ".") for p in pats)]


def _run_one(case: Case, ctx: Context) -> Outcome:
    with ctx.scope():
        try:
            return case.fn(ctx)
        except Verdict as verdict:
            return verdict.outcome
        except (PeerTimeout, PeerClosed, AssertionError, OSError, ValueError) as exc:
            return Outcome(Status.FAILED, f"{type(exc).__name__}: {exc}")


def run_server_suite(
    target: Target,
    *,
    only: Iterable[str] | None = None,
    notes: dict[str, str] | None = None,
    progress: Callable[[CaseResult], None] | None = None,
    timeout: float = 3.0,
) -> Report:
    """Run the selected cases against ``target``; start and stop it in command mode."""
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    chosen = select(only)
    plain = [c for c in chosen if c.needs != "managed"]
    managed = [c for c in chosen if c.needs == "managed"]
    results: dict[str, CaseResult] = {}

    def record(case: Case, outcome: Outcome, seconds: float) -> None:
        result = CaseResult(
            id=case.id,
            group=case.group,
            title=case.title,
            rule=case.rule,
            status=outcome.status.value,
            summary=outcome.summary,
            details=outcome.details,
            expected=outcome.expected,
            got=outcome.got,
            seconds=round(seconds, 3),
            note=(notes or {}).get(case.id, ""),
        )
        results[case.id] = result
        if progress is not None:
            progress(result)

    ctx = Context(target, timeout=timeout)
    try:
        if plain:
            target.start()
        for case in plain:
            t = time.monotonic()
            if target.managed and target.process is not None and target.process.poll() is not None:
                target.start()  # an earlier case took it down: judge this one on a fresh server
            record(case, _run_one(case, ctx), time.monotonic() - t)
        fresh_needed = False
        for case in managed:
            t = time.monotonic()
            if not target.managed:
                na = Outcome(
                    Status.NOT_APPLICABLE,
                    "needs a server the runner starts: use `-- COMMAND` instead of a URL",
                )
                record(case, na, 0.0)
                continue
            proc = target.process
            if fresh_needed or proc is None or proc.poll() is not None:
                target.restart()
            outcome = _run_one(case, ctx)
            # a server that did not come through a case cleanly is replaced before the next
            fresh_needed = outcome.status is not Status.OK
            record(case, outcome, time.monotonic() - t)
    finally:
        target.stop()
    ordered = [results[c.id] for c in chosen if c.id in results]
    return Report("server", target.describe(), started, time.monotonic() - t0, ordered)
