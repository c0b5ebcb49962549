"""Client mode: run a client program once per profile task against the profile server.

The program is started as given after ``--``, once per task, with these
placeholders in its arguments and the same values in its environment:

============  ==================  =============================================
placeholder   environment         value
============  ==================  =============================================
``{url}``     ``GOOMERANG_URL``   ``ws://127.0.0.1:PORT/ws``
``{addr}``    ``GOOMERANG_ADDR``  ``127.0.0.1:PORT``
``{task}``    ``GOOMERANG_TASK``  send, sync, headers, big, pubsub, broadcast
``{n}``       ``GOOMERANG_N``     messages per task (``--messages``, default 10)
``{topic}``   ``GOOMERANG_TOPIC`` the pub/sub topic
``{clients}`` ``GOOMERANG_CLIENTS`` broadcast receivers besides the sender (2)
``{size}``    ``GOOMERANG_SIZE``  big: the message text's length (524288)
============  ==================  =============================================

What each task asks of the program (the client profile; docs/conformance/README.md):

* ``send``: connect, send N async MessageV1, wait for the N echoes, close;
* ``sync``: connect, send N sync MessageV1 (any concurrency), check each reply's text, close
  (the server answers concurrent requests pairwise out of order: replies match by uuid);
* ``headers``: send MessageV1 async and sync with headers UNICODE_HEADERS, then with
  no headers, check the echoes (the sync one adds ``echo: 1``), close;
* ``big``: one async and one sync MessageV1 whose text is SIZE bytes, check the echoes;
* ``pubsub``: one connection subscribes to TOPIC, another publishes N MessageV1 to it,
  the subscriber gets all N (a subscription is in place once a sync request sent after
  it on the same connection was answered; the Go client waits 300 ms instead);
* ``broadcast``: CLIENTS + 1 connections; one broadcasts N MessageV1; each gets N.

The program exits 0 when everything it expected arrived; if it prints a JSON
line with ``"complete": false`` the task fails too. The server checks every
envelope it gets (kind, payloadSize, creation, uuid format, the ``message-``
prefix of command headers) and how each connection ends.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import time
import uuid as _uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from goomerang_proto import codec
from goomerang_proto.pb import goomerang_frame_pb2 as pb
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

from .profile_server import KIND, ConnRecord, ProfileServer
from .runner import CaseResult, Report
from .suite import Status

UNICODE_HEADERS = {"uni": "héllo wörld ✓ 日本語 🚀", "empty": "", "ключ": "значение", "k": "v"}
TOPIC = "conformance.topic"
CLIENTS = 2
SIZE = 512 * 1024
TASKS = ("send", "sync", "headers", "big", "pubsub", "broadcast")
CLIENT_GROUPS = {"1": "The program", "2": "Messages", "3": "Broadcast and publish/subscribe"}
CASE_IDS = {
    "send": ("2.1", "send: N async MessageV1 sent and their echoes received"),
    "sync": ("2.2", "sync: N sync requests with fresh UUID v4 ids, every reply checked"),
    "headers": ("2.3", "headers: unicode and empty header values, and none, async and sync"),
    "big": ("2.4", "big: a 512 KiB MessageV1 async and sync"),
    "pubsub": ("3.1", "pubsub: subscribe, publish N, all delivered"),
    "broadcast": ("3.2", "broadcast: N broadcasts reach every connection"),
}


@dataclass
class TaskRun:
    """One run of the program for one task."""

    task: str
    exit_code: int | None
    seconds: float
    stdout: str
    records: list[ConnRecord]


def _run_task(
    server: ProfileServer, command: Sequence[str], task: str, n: int, timeout: float
) -> TaskRun:
    values = {
        "url": server.url,
        "addr": server.addr,
        "host": "127.0.0.1",
        "port": str(server.port),
        "task": task,
        "n": str(n),
        "topic": TOPIC,
        "clients": str(CLIENTS),
        "size": str(SIZE),
    }
    env = dict(os.environ)
    env.update({f"GOOMERANG_{k.upper()}": v for k, v in values.items()})
    argv = [arg.format(**values) for arg in command]
    server.take_records()
    server.reorder_sync = task == "sync"
    start = time.monotonic()
    try:
        proc = subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout
        )
        code: int | None = proc.returncode
        out = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as exc:
        code = None
        out = (exc.stdout or b"").decode("utf-8", "replace")
    seconds = time.monotonic() - start
    server.wait_closed(3.0)
    return TaskRun(task, code, seconds, out, server.take_records())


def _complete_flag(stdout: str) -> bool | None:
    """The ``complete`` field of the last JSON line the program printed, if any."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line).get("complete")
            except (ValueError, AttributeError):
                continue
            return bool(value) if isinstance(value, bool) else None
    return None


def _messages(run: TaskRun) -> list[pb.Frame]:
    return [e for r in run.records for e in r.envelopes if e.kind == KIND]


def _commands(run: TaskRun, kind: str) -> list[pb.Frame]:
    return [e for r in run.records for e in r.envelopes if e.kind == kind]


def _envelope_problems(envs: Iterable[pb.Frame]) -> list[str]:
    problems = []
    now = time.time()
    for env in envs:
        if env.payloadSize != len(env.payload):
            problems.append(f"payloadSize {env.payloadSize} != len(payload) {len(env.payload)}")
        if not env.HasField("creation"):
            problems.append("an envelope without creation")
        elif abs(env.creation.seconds - now) > 300:
            problems.append(f"creation {env.creation.seconds} is far from now")
        if env.is_sync:
            try:
                parsed = _uuid.UUID(env.uuid)
            except ValueError:
                problems.append(f"sync uuid {env.uuid!r} is not a UUID")
                continue
            if len(env.uuid) != 36 or parsed.version != 4:
                problems.append(f"sync uuid {env.uuid!r} is not 36-character UUID v4 text")
        elif env.uuid:
            problems.append(f"an async message carries uuid {env.uuid!r}")
    return problems[:5]


def _judge(run: TaskRun, n: int) -> tuple[Status, str, list[str]]:
    """Verdict for one task: FAILED problems first, then informational notes."""
    fails: list[str] = []
    notes: list[str] = []
    swapped, extra = 0, ""
    if run.exit_code is None:
        fails.append("the program did not finish in time")
    elif run.exit_code != 0:
        fails.append(f"exit status {run.exit_code}")
    if _complete_flag(run.stdout) is False:
        fails.append("the program reported complete: false")
    if not run.records:
        fails.append("the program never connected")
    for rec in run.records:
        if rec.path != "/ws":
            fails.append(f"connection {rec.id} did not upgrade on /ws ({rec.errors})")
        if rec.errors:
            fails.append(f"connection {rec.id}: {rec.errors[0]}")
        if rec.texts:
            fails.append(f"connection {rec.id} sent {rec.texts} text messages")
    msgs = _messages(run)
    fails += _envelope_problems(e for r in run.records for e in r.envelopes)
    task = run.task
    if task == "send":
        got = [e for e in msgs if not e.is_sync]
        if len(got) != n:
            fails.append(f"{len(got)} async MessageV1 received, expected {n}")
    elif task == "sync":
        got = [e for e in msgs if e.is_sync]
        ids = {e.uuid for e in got}
        if len(got) != n or len(ids) != n:
            fails.append(f"{len(got)} sync requests with {len(ids)} distinct uuids, expected {n}")
        swapped = sum(r.swapped for r in run.records)
        extra = f"{swapped} reply pairs sent out of order"
    elif task == "headers":
        seen = [(e.is_sync, dict(e.headers)) for e in msgs]
        for want in ((False, UNICODE_HEADERS), (True, UNICODE_HEADERS), (False, {}), (True, {})):
            if want not in seen:
                fails.append(f"no {'sync' if want[0] else 'async'} message with headers {want[1]}")
    elif task == "big":
        sizes = sorted(len(MessageV1.FromString(e.payload).message) for e in msgs)
        if sizes.count(SIZE) < 2:
            fails.append(f"message text sizes {sizes}, expected two of {SIZE}")
    elif task == "pubsub":
        subs = _commands(run, codec.SUBSCRIBE_CMD)
        pubs = _commands(run, codec.PUBLISH_CMD)
        topics = {pb.SubscribeCmd.FromString(e.payload).topic for e in subs}
        if TOPIC not in topics:
            fails.append(f"no SubscribeCmd for {TOPIC!r} (got {sorted(topics)})")
        counted = [e for e in pubs if pb.PublishCmd.FromString(e.payload).topic == TOPIC]
        if len(counted) < n:
            fails.append(f"{len(counted)} PublishCmd on {TOPIC!r}, expected at least {n}")
        fails += _prefix_problems(pubs)
        delivered = sum(r.delivered for r in run.records)
        if delivered < n:
            fails.append(f"{delivered} publishes delivered to subscribers, expected {n}")
    elif task == "broadcast":
        cmds = _commands(run, codec.BROADCAST_CMD)
        if len(cmds) != n:
            fails.append(f"{len(cmds)} BroadcastCmd, expected {n}")
        fails += _prefix_problems(cmds)
        if len(run.records) < CLIENTS + 1:
            fails.append(f"{len(run.records)} connections, expected {CLIENTS + 1}")
    for rec in run.records:
        if rec.close_code not in (1000, 1001) or not rec.closed_by_client:
            who = "by the client" if rec.closed_by_client else "without a client Close"
            notes.append(f"connection {rec.id} ended with {rec.close_code} {who}")
    if fails:
        return Status.FAILED, fails[0], fails[1:] + notes
    if notes:
        return Status.INFORMATIONAL, "all checks passed; " + notes[0], notes[1:]
    conns = len(run.records)
    summary = f"exit 0, {conns} connection(s), every envelope valid, Close 1000"
    if task == "sync":
        summary += (
            f"; {extra} (the client sends one request at a time)"
            if not swapped
            else (f"; {extra}, each matched by uuid")
        )
    return Status.OK, summary, []


def _prefix_problems(cmds: list[pb.Frame]) -> list[str]:
    bad = [k for e in cmds for k in e.headers if not k.startswith(codec.HEADER_PREFIX)]
    return [f"command headers without the message- prefix: {bad[:3]}"] if bad else []


def run_client_suite(
    command: Sequence[str],
    *,
    n: int = 10,
    only: Iterable[str] | None = None,
    notes: dict[str, str] | None = None,
    progress: Callable[[CaseResult], None] | None = None,
    task_timeout: float = 30.0,
) -> Report:
    """Run every profile task with ``command`` and judge each; return the report."""
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    wanted = set(only or [])
    results: list[CaseResult] = []
    handshakes: list[ConnRecord] = []
    with ProfileServer() as server:
        for task in TASKS:
            case_id, title = CASE_IDS[task]
            if wanted and not any(
                case_id == w or case_id.startswith(w + ".") or w == task for w in wanted
            ):
                continue
            run = _run_task(server, command, task, n, task_timeout)
            handshakes += run.records
            status, summary, details = _judge(run, n)
            if status is Status.FAILED and run.stdout.strip():
                details = [*details, "program output: " + run.stdout.strip()[-400:]]
            result = CaseResult(
                id=case_id,
                group=case_id.split(".")[0],
                title=title,
                rule="the client profile (goomerang_io/conformance/client_mode.py)",
                status=status.value,
                summary=summary,
                details=details,
                seconds=round(run.seconds, 3),
                note=(notes or {}).get(case_id, ""),
            )
            results.append(result)
            if progress is not None:
                progress(result)
    first = _handshake_result(handshakes, notes)
    if progress is not None:
        progress(first)
    results.insert(0, first)
    report = Report("client", " ".join(command), started, time.monotonic() - t0, results)
    report.groups = CLIENT_GROUPS
    return report


def _handshake_result(records: list[ConnRecord], notes: dict[str, str] | None) -> CaseResult:
    problems = []
    for rec in records:
        names = {k.lower(): v for k, v in rec.headers}
        if rec.path != "/ws":
            problems.append(f"connection {rec.id}: no upgrade on /ws")
        elif "host" not in names:
            problems.append(f"connection {rec.id}: no Host header")
    status = Status.FAILED if problems or not records else Status.OK
    summary = (
        problems[0]
        if problems
        else (
            f"{len(records)} upgrades: GET /ws, Host, Upgrade, Connection, a valid key, version 13"
            if records
            else "the program never connected"
        )
    )
    return CaseResult(
        id="1.1",
        group="1",
        title="Every connection opens with a valid upgrade request",
        rule="RFC 6455 4.1; PROTOCOL.md Upgrade request from the Go client",
        status=status.value,
        summary=summary,
        details=problems[1:4],
        note=(notes or {}).get("1.1", ""),
    )
