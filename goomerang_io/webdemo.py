"""``goomerang demo --web``: a chat room in the browser over publish/subscribe.

The server serves the page (built from ``clients/typescript``: ``make ts-build``)
on its own port next to the WebSocket endpoint ``/ws``: open the printed URL in
one or more browser tabs. The page's TypeScript client publishes chat lines to
topic ``chat`` (MessageV1 with header ``from``), shows a live message-rate
counter, and measures sendSync round trips (answered here with ReplyV1).
Everything listens on the given address (127.0.0.1 by default) until SIGINT or
SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

from . import Message, Request, Response, Sender, Server

WEB_DIR = Path(__file__).resolve().parent.parent / "clients" / "typescript" / "dist" / "web"
"""Where ``make ts-build`` puts the page (index.html, demo.js)."""

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def _answer(sender: Sender, message: Message[Any]) -> None:
    """A sync MessageV1 gets a ReplyV1 with the same text; an async one is echoed."""
    if message.is_sync:
        sender.send(Message(ReplyV1(message=message.payload.message), message.headers))
    else:
        sender.send(Message(message.payload, message.headers))


def _constant(response: Response) -> Callable[[Request], Response]:
    return lambda _request: response


def build_web_server(listen: str, web_dir: Path = WEB_DIR) -> Server:
    """The demo server: the page's files as routes, MessageV1 answered, ReplyV1 registered.

    Raises FileNotFoundError (with what to run) when the page was not built.
    """
    index = web_dir / "index.html"
    if not index.is_file():
        raise FileNotFoundError(
            f"{index} is missing: build the page first with `make ts-build` "
            "(needs Node 20 and npm; see the README's TypeScript client section)"
        )
    server = Server(listen)
    server.handle(MessageV1, _answer)
    server.register_message(ReplyV1)
    for path in sorted(web_dir.iterdir()):
        if path.is_file() and path.suffix in _TYPES:
            response = Response(
                200, path.read_bytes(), (("Cache-Control", "no-store"),), _TYPES[path.suffix]
            )
            server.route(f"/{path.name}", _constant(response))
            if path.name == "index.html":
                server.route("/", _constant(response))
    return server


async def _serve(server: Server) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    print(
        f"goomerang web demo: open http://{server.addr}/ (WebSocket {server.url}); Ctrl-C stops",
        flush=True,
    )
    await stop.wait()
    await server.shutdown()


def main(args: argparse.Namespace) -> int:
    """Entry point of ``goomerang demo --web``."""
    try:
        server = build_web_server(args.listen)
    except FileNotFoundError as exc:
        print(f"goomerang demo --web: {exc}", flush=True)
        return 2
    asyncio.run(_serve(server))
    return 0
