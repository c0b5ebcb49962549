"""A realistic goomerang application: TLS, tokens, rooms joined by the server, history, metrics.

Run it with a certificate (the test generates one)::

    python examples/chat_server.py --cert cert.pem --key key.pem --ca cert.pem

It starts a wss server on 127.0.0.1 (an ephemeral port), then two clients:
alice joins room "lobby" and says hello, bob (in the same room) receives it
stamped by the server with alice's identity, asks the room's history with a
request/response, a forged publish is refused, and /metrics is scraped over
HTTPS with a scrape token. It prints what happened and exits 0.

Messages are goomerang.example.MessageV1 with an ``op`` header (join, say,
history) to keep the example self-contained; an application would define its
own .proto messages and register one handler per class.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import urllib.request
from typing import Any

from prometheus_client import CollectorRegistry

from goomerang_io import (
    Client,
    Message,
    PermissionDenied,
    Request,
    Response,
    Sender,
    Server,
)
from goomerang_io.metrics import ServerMetrics, metrics_http_response
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

TOKENS = {"alice-token": "alice", "bob-token": "bob"}
SCRAPE_TOKEN = "scrape-token"


def build_server(tls: ssl.SSLContext, registry: CollectorRegistry) -> Server:
    """The application: who may connect, which rooms, what the server stamps and stores."""
    history: dict[str, list[str]] = {}  # per process: with workers, keep it in a store

    def authenticate(request: Request) -> Any:
        token = (request.header("authorization") or "").removeprefix("Bearer ")
        return TOKENS.get(token)  # None: 401 (return ANONYMOUS to admit guests)

    server = Server(
        "127.0.0.1:0",
        tls=tls,
        authenticate=authenticate,
        metrics=ServerMetrics(registry=registry),
        client_subscribe=False,  # rooms are joined by the server only
        client_publish=False,  # clients speak through the handler, which stamps them
        client_broadcast=False,
        max_concurrency=1,  # one connection's messages are handled in order
    )

    async def on_message(sender: Sender, message: Message[MessageV1]) -> None:
        op = message.headers.get("op")
        room = message.headers.get("room", "lobby")
        if op == "join":
            sender.subscribe(f"room.{room}")
            await sender.send(Message(ReplyV1(message=f"joined {room}")))
        elif op == "say":
            line = f"{sender.identity}: {message.payload.message}"
            history.setdefault(room, []).append(line)
            await server.publish(f"room.{room}", Message(ReplyV1(message=line), {"room": room}))
        elif op == "history":
            await sender.send(Message(ReplyV1(message="\n".join(history.get(room, [])))))

    def scrape_auth(request: Request) -> Any:
        ok = request.header("authorization") == f"Bearer {SCRAPE_TOKEN}"
        return "prometheus" if ok else None

    def metrics_route(_request: Request) -> Response:
        status, headers, body = metrics_http_response(registry)
        return Response(status, body, tuple(headers))

    server.handle(MessageV1, on_message)
    server.register_message(ReplyV1)
    server.route("/metrics", metrics_route, authorize=scrape_auth)
    server.route("/health", lambda _r: "ok\n")
    return server


def connect(server: Server, ca: ssl.SSLContext, token: str, **kwargs: Any) -> Client:
    client = Client(server.addr, tls=ca, headers=[("Authorization", f"Bearer {token}")], **kwargs)
    client.register_message(ReplyV1)
    return client


def scrape(addr: str, ca: ssl.SSLContext, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"https://{addr}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=ca, timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), ""


async def run(cert: str, key: str, ca_file: str) -> int:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    ca = ssl.create_default_context(cafile=ca_file)
    server = build_server(tls, CollectorRegistry())
    async with server:
        said: asyncio.Queue[str] = asyncio.Queue()
        refusals: asyncio.Queue[BaseException] = asyncio.Queue()
        bob = connect(server, ca, "bob-token", on_error=refusals.put_nowait)
        bob.handle(ReplyV1, lambda _s, m: said.put_nowait(m.payload.message))
        alice = connect(server, ca, "alice-token")
        async with alice, bob:
            for client in (alice, bob):
                joined = await client.send_sync(
                    Message(MessageV1(), {"op": "join", "room": "lobby"}), reply=ReplyV1
                )
                print(joined.payload.message)
            await alice.send(Message(MessageV1(message="hello"), {"op": "say", "room": "lobby"}))
            line = await asyncio.wait_for(said.get(), 5)
            print("bob received:", line)
            past = await bob.send_sync(Message(MessageV1(), {"op": "history"}), reply=ReplyV1)
            print("history:", past.payload.message.splitlines())
            await bob.publish("room.lobby", Message(MessageV1(message="forged")))
            refused = await asyncio.wait_for(refusals.get(), 5)
            print("forged publish refused:", isinstance(refused, PermissionDenied))
            try:
                await connect(server, ca, "stolen").connect()
            except Exception as exc:  # HandshakeError with status 401
                print("wrong token:", getattr(exc, "status", exc))
        no_token = await asyncio.to_thread(scrape, server.addr, ca, None)
        status, body = await asyncio.to_thread(scrape, server.addr, ca, SCRAPE_TOKEN)
        print("metrics without token:", no_token[0], "with token:", status)
        print("connections opened:", "goomerang_server_connections" in body)
    ok = line == "alice: hello" and status == 200 and no_token[0] == 401
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", required=True)
    args = parser.parse_args(argv)
    return asyncio.run(run(args.cert, args.key, args.ca))


if __name__ == "__main__":
    sys.exit(main())
