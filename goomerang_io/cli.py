"""The ``goomerang`` command: ``serve`` (an echo server), ``demo`` and ``conformance``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from goomerang_proto import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

from .asyncio.server import Server
from .sender import Sender


def echo_handler(sender: Sender, message: Message[Any]) -> None:
    """Echo a MessageV1 to its sender; a sync request gets its reply with ``echo: 1`` added."""
    if message.is_sync:
        headers = dict(message.headers)
        headers["echo"] = "1"
        sender.send(Message(message.payload, headers))
    else:
        sender.send(Message(message.payload, message.headers))


def build_echo_server(args: argparse.Namespace) -> Server:
    """The server that ``goomerang serve`` runs."""
    workers: int | str = args.workers if args.workers == "auto" else int(args.workers)
    server = Server(args.listen, workers=workers, backplane=args.backplane)
    server.handle(MessageV1, echo_handler)
    if args.metrics:
        if server.workers > 1:
            from .metrics import prepare_multiprocess_dir

            prepare_multiprocess_dir()
        from .metrics import ServerMetrics, metrics_http_response

        server.metrics = ServerMetrics()

        def metrics_route(_request: Any) -> Any:
            from .http import Response

            status, headers, body = metrics_http_response()
            return Response(status, body, tuple(headers))

        server.route("/metrics", metrics_route)
    return server


def _serve(args: argparse.Namespace) -> int:
    server = build_echo_server(args)

    def ready() -> None:
        logging.getLogger("goomerang").info("goomerang: listening on %s", server.url)

    if server.workers > 1:
        from .process.workers import run_workers

        return run_workers(server)
    from .process.workers import run_single

    return run_single(server, ready)


def _demo(args: argparse.Namespace) -> int:
    if args.web:
        from .webdemo import main as web_main

        return web_main(args)
    from .demo import main as demo_main

    return demo_main(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``goomerang`` and ``python -m goomerang_io``."""
    parser = argparse.ArgumentParser(prog="goomerang", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run an echo server for goomerang.example.MessageV1")
    serve.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (port 0: any free)")
    serve.add_argument("--workers", default="1", help="worker processes, or 'auto' (CPUs)")
    serve.add_argument("--backplane", default=None, help="redis://HOST:PORT/DB for multi-host")
    serve.add_argument("--metrics", action="store_true", help="expose /metrics")
    serve.set_defaults(func=_serve)
    demo = sub.add_parser("demo", help="a server and clients exercising every feature")
    demo.add_argument("--workers", type=int, default=2)
    demo.add_argument("--clients", type=int, default=4)
    demo.add_argument("--messages", type=int, default=20000)
    demo.add_argument("--web", action="store_true", help="serve the browser chat demo instead")
    demo.add_argument("--listen", default="127.0.0.1:8080", help="with --web: HOST:PORT")
    demo.set_defaults(func=_demo)
    from .conformance.command import add_parser as add_conformance
    from .conformance.command import split_command

    add_conformance(sub)
    own, peer_command = split_command(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(own)
    args.peer_command = peer_command
    # a program, not a library: it logs its events (listening, worker exits) once each, to
    # stdout, where scripts wait for the "listening on" line
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
