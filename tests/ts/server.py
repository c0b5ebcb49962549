"""A Python goomerang server for the TypeScript client's tests (not a pytest module).

``python tests/ts/server.py [--listen 127.0.0.1:0] [--static DIR] [--max-message-size N]
[--token T]`` prints ``READY <host:port>`` once listening, then reads JSON commands
from stdin, one per line, and answers each with one JSON line carrying its ``id``:

* ``{"id": 1, "op": "broadcast", "message": "text"}``: a server broadcast of MessageV1;
* ``{"id": 2, "op": "wait-subscribes", "topic": "t", "n": 1}``: answers once ``n``
  subscribes to ``topic`` were processed (the on_subscribe hook), or an error after 10 s;
* ``{"id": 3, "op": "broadcast-unknown"}``: a broadcast of BadReplyV1, a kind the TS tests
  do not register on their client.

Handlers: MessageV1 async is echoed; a sync MessageV1 is answered with
``ReplyV1(message.upper())`` and header ``echo: 1``. ReplyV1 and BadReplyV1 are
registered, so clients may broadcast and publish them. ``--static DIR`` serves each
file of DIR on ``/<name>`` (``/`` is ``index.html``). ``--token T`` authenticates the
upgrade by query parameter ``token`` or cookie ``goomerang_token`` (else HTTP 401).
EOF stdin or SIGTERM: graceful shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from goomerang_io import Message, Rejection, Request, Response, Sender, Server
from goomerang_proto.pb.goomerang_example_pb2 import BadReplyV1, MessageV1, ReplyV1

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def echo(sender: Sender, message: Message[Any]) -> None:
    """Async: echo. Sync: ReplyV1 with the text upper-cased and header echo=1."""
    if message.is_sync:
        headers = dict(message.headers)
        headers["echo"] = "1"
        sender.send(Message(ReplyV1(message=message.payload.message.upper()), headers))
    else:
        sender.send(Message(message.payload, message.headers))


def token_of(request: Request) -> str | None:
    """The token from query parameter ``token``, else from cookie ``goomerang_token``."""
    values = request.query_params.get("token")
    if values:
        return values[0]
    cookie = SimpleCookie(request.header("cookie") or "")
    morsel = cookie.get("goomerang_token")
    return morsel.value if morsel is not None else None


def constant(response: Response) -> Callable[[Request], Response]:
    """A route handler that always answers ``response``."""
    return lambda _request: response


def build(args: argparse.Namespace, subscribes: Counter[str], changed: asyncio.Event) -> Server:
    """The test server."""

    def on_subscribe(topic: str) -> None:
        subscribes[topic] += 1
        changed.set()

    authenticate = None
    if args.token:

        def authenticate(request: Request) -> Any:
            token = token_of(request)
            if token != args.token:
                return Rejection(401, b"bad or missing token\n")
            return {"token": token}

    server = Server(
        args.listen,
        max_message_size=args.max_message_size,
        authenticate=authenticate,
        on_subscribe=[on_subscribe],
    )
    server.handle(MessageV1, echo)
    server.register_message(ReplyV1)
    server.register_message(BadReplyV1)
    if args.static:
        for path in sorted(Path(args.static).iterdir()):
            if not path.is_file():
                continue
            body = path.read_bytes()
            ctype = TYPES.get(path.suffix, "application/octet-stream")
            response = Response(200, body, (("Cache-Control", "no-store"),), ctype)
            server.route(f"/{path.name}", constant(response))
            if path.name == "index.html":
                server.route("/", constant(response))
    return server


async def command(
    server: Server, cmd: dict[str, Any], subscribes: Counter[str], changed: asyncio.Event
) -> dict[str, Any]:
    """Run one stdin command; the answer to print."""
    op = cmd.get("op")
    if op == "broadcast":
        results = await server.broadcast(Message(MessageV1(message=cmd["message"])))
        return {"ok": True, "receivers": len(results)}
    if op == "broadcast-unknown":
        results = await server.broadcast(Message(BadReplyV1(message="who knows me?")))
        return {"ok": True, "receivers": len(results)}
    if op == "wait-subscribes":
        topic, n = cmd["topic"], int(cmd["n"])
        async with asyncio.timeout(10):
            while subscribes[topic] < n:
                changed.clear()
                await changed.wait()
        return {"ok": True, "count": subscribes[topic]}
    return {"ok": False, "error": f"unknown op {op!r}"}


async def main(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    subscribes: Counter[str] = Counter()
    changed = asyncio.Event()
    server = build(args, subscribes, changed)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    await server.start()
    print(f"READY {server.addr}", flush=True)
    threading.Thread(target=read_stdin, daemon=True).start()

    async def serve_commands() -> None:
        while (line := await lines.get()) is not None:
            cmd = json.loads(line)
            try:
                answer = await command(server, cmd, subscribes, changed)
            except Exception as exc:  # reported to the test, which fails on it
                answer = {"ok": False, "error": repr(exc)}
            print(json.dumps({"id": cmd.get("id"), **answer}), flush=True)
        stop.set()

    commands = asyncio.ensure_future(serve_commands())
    await stop.wait()
    commands.cancel()
    await server.shutdown()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--static", default=None)
    parser.add_argument("--max-message-size", type=int, default=1024 * 1024)
    parser.add_argument("--token", default=None)
    sys.exit(asyncio.run(main(parser.parse_args())))
