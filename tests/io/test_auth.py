"""Authentication and the Origin allow-list over real sockets."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from rawws import http_exchange, upgrade_request
from threaded import ThreadedServer
from util import run

from goomerang_io import AuthRejected, Client, Rejection, Request, Server
from goomerang_io import sync as sync_client
from goomerang_proto import HandshakeError, Message
from goomerang_proto.codec import pack
from goomerang_proto.frames import OP_BINARY, build_frame
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

WAIT = 5.0


class Auth:
    """Bearer-token authenticate: none -> 401, wrong -> 403, good -> an identity."""

    def __init__(self) -> None:
        self.seen: list[Request] = []

    def __call__(self, request: Request) -> Any:
        self.seen.append(request)
        header = request.header("authorization")
        if header is None:
            return Rejection(401, b"token required\n")
        if header != "Bearer good":
            raise AuthRejected(403, "bad token")
        return {"user": "alice"}


def make_server(auth: Any, handled: list[Any], **kwargs: Any) -> Server:
    def handler(sender: Any, message: Message[Any]) -> Any:
        handled.append(message)
        return sender.send(Message(ReplyV1(message=repr(sender.identity))))

    server = Server("127.0.0.1:0", authenticate=auth, **kwargs)
    server.handle(MessageV1, handler)
    server.register_message(ReplyV1)
    return server


@pytest.mark.parametrize(
    ("headers", "status"),
    [([], 401), ([("Authorization", "Bearer bad")], 403), ([("Authorization", "x")], 403)],
)
def test_rejected_upgrades_get_http_status_and_never_reach_handlers(
    headers: list[tuple[str, str]], status: int
) -> None:
    async def main() -> None:
        handled: list[Any] = []
        server = make_server(Auth(), handled)
        await server.start()
        # The request is followed at once by a frame: it must not reach a handler.
        frame = build_frame(OP_BINARY, pack(Message(MessageV1(message="sneak"))), mask=True)
        got, head = await http_exchange(
            server.addr, upgrade_request(server.addr, headers=headers) + frame
        )
        assert got == status, head
        client = Client(server.addr, heartbeat_interval=None, headers=headers)
        with pytest.raises(HandshakeError) as info:
            await client.connect()
        assert info.value.status == status
        assert handled == []
        assert server.connections() == 0
        await server.shutdown(timeout=2.0)

    run(main())


def test_identity_reaches_the_handler_and_the_header_reaches_authenticate() -> None:
    async def main() -> None:
        handled: list[Any] = []
        auth = Auth()
        server = make_server(auth, handled)
        await server.start()
        client = Client(
            server.addr, heartbeat_interval=None, headers=[("Authorization", "Bearer good")]
        )
        client.register_message(ReplyV1)
        await client.connect()
        reply = await client.send_sync(Message(MessageV1(message="who am i")))
        assert reply.payload.message == repr({"user": "alice"})
        assert auth.seen[-1].header("authorization") == "Bearer good"
        assert auth.seen[-1].path == "/ws"
        await client.close()
        await server.shutdown(timeout=2.0)

    run(main())


def test_async_authenticate_and_the_blocking_client() -> None:
    calls = threading.Event()

    async def auth(request: Request) -> Any:
        await asyncio.sleep(0)
        calls.set()
        if request.header("authorization") != "Bearer good":
            raise AuthRejected(401, "no")
        return "bob"

    handled: list[Any] = []

    def setup(server: Server) -> None:
        server.authenticate = auth

        def handler(sender: Any, message: Message[Any]) -> Any:
            handled.append(message)
            return sender.send(Message(ReplyV1(message=str(sender.identity))))

        server.handle(MessageV1, handler)
        server.register_message(ReplyV1)

    with ThreadedServer(setup) as ts:
        bad = sync_client.Client(ts.addr, heartbeat_interval=None)
        with pytest.raises(HandshakeError) as info:
            bad.connect()
        assert info.value.status == 401
        good = sync_client.Client(
            ts.addr, heartbeat_interval=None, headers=[("Authorization", "Bearer good")]
        )
        good.register_message(ReplyV1)
        with good:
            assert good.send_sync(Message(MessageV1(message="?"))).payload.message == "bob"
    assert calls.is_set()
    assert len(handled) == 1


def test_authenticate_that_crashes_gives_500_and_reports() -> None:
    async def main() -> None:
        errors: list[BaseException] = []

        def auth(_request: Request) -> Any:
            raise RuntimeError("database down")

        handled: list[Any] = []
        server = make_server(auth, handled, on_error=errors.append)
        await server.start()
        status, _ = await http_exchange(server.addr, upgrade_request(server.addr))
        assert status == 500
        assert any("database down" in str(e) for e in errors)
        await server.shutdown(timeout=2.0)

    run(main())


@pytest.mark.parametrize(
    ("origin", "status"),
    [("https://evil.example", 403), ("https://ok.example", 101), (None, 101)],
)
def test_origin_allow_list(origin: str | None, status: int) -> None:
    async def main() -> None:
        handled: list[Any] = []
        server = make_server(None, handled, allowed_origins=["https://ok.example"])
        await server.start()
        headers = [("Origin", origin)] if origin is not None else []
        got, head = await http_exchange(server.addr, upgrade_request(server.addr, headers=headers))
        assert got == status, head
        await server.shutdown(timeout=2.0)

    run(main())
