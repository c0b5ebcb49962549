"""Shared helpers of the kit's tests."""

from __future__ import annotations

import sys

from goomerang_io.conformance.runner import Report

SERVE = [sys.executable, "-m", "goomerang_io", "serve", "--listen", "{addr}"]
PROFILES = "goomerang_io.conformance.profiles"


def statuses(report: Report) -> dict[str, str]:
    """Case id -> verdict."""
    return {r.id: r.status for r in report.results}
