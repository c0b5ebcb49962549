"""``goomerang conformance server|client``: the argument parsing and the run.

::

    goomerang conformance server ws://127.0.0.1:8080/ws
    goomerang conformance server -- goomerang serve --listen {addr}
    goomerang conformance client -- python -m goomerang_io.conformance.profiles.asyncio_client

Exit status: 0 when no case FAILED, 1 otherwise, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = "Judge a goomerang server or client program against the protocol (numbered cases)."


def add_parser(sub: Any) -> None:
    """Add the ``conformance`` subcommand to the ``goomerang`` parser."""
    p = sub.add_parser(
        "conformance",
        help=DESCRIPTION,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("mode", choices=["server", "client"])
    p.add_argument("url", nargs="?", help="server mode: ws://HOST:PORT/ws of a running server")
    p.add_argument("--cases", action="append", help="run only these case ids or groups (repeat)")
    p.add_argument("--json", type=Path, help="write the JSON report here")
    p.add_argument("--html", type=Path, help="write the HTML report here")
    p.add_argument("--title", help="the HTML report's heading")
    p.add_argument("--notes", type=Path, help="JSON {case id: explanation} shown in the reports")
    p.add_argument("--messages", type=int, default=10, help="client mode: N for each task")
    p.add_argument("--task-timeout", type=float, default=30.0, help="client mode: seconds per task")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the counts")
    p.set_defaults(func=run)


def split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split ``argv`` at ``--``: (goomerang's own arguments, the peer command or None)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, None


def run(args: argparse.Namespace) -> int:
    """Run the suite the arguments ask for; print and write the reports."""
    from .report import line, write_html, write_json

    command: list[str] | None = getattr(args, "peer_command", None)
    notes = json.loads(args.notes.read_text()) if args.notes else None
    progress = None if args.quiet else (lambda r: print(line(r), flush=True))
    if args.mode == "server":
        from .runner import run_server_suite
        from .target import Target

        if (args.url is None) == (command is None):
            print("goomerang conformance server: give a URL or `-- COMMAND`", file=sys.stderr)
            return 2
        try:
            target = Target(args.url, command)
        except ValueError as exc:
            print(f"goomerang conformance server: {exc}", file=sys.stderr)
            return 2
        try:
            report = run_server_suite(target, only=args.cases, notes=notes, progress=progress)
        except (RuntimeError, OSError) as exc:
            print(f"goomerang conformance server: the server did not start: {exc}", file=sys.stderr)
            return 2
        finally:
            target.close()
    else:
        from .client_mode import run_client_suite

        if command is None:
            print("goomerang conformance client: give `-- COMMAND`", file=sys.stderr)
            return 2
        report = run_client_suite(
            command,
            n=args.messages,
            only=args.cases,
            notes=notes,
            progress=progress,
            task_timeout=args.task_timeout,
        )
    counts = report.counts()
    print(
        f"{report.mode} {report.target}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f" ({report.seconds:.1f} s)"
    )
    if args.json:
        write_json(report, args.json)
    if args.html:
        write_html(report, args.html, args.title)
    return 1 if counts["FAILED"] else 0
