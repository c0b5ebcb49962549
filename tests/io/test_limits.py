"""Limits over real sockets: message size, pending sync requests, request size."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hookwait import HookWait
from rawws import RawPeer, http_exchange, upgrade_request
from util import run

from goomerang_io import Client, Server
from goomerang_proto import ConnectionLost, Message, Status, TooManyPending
from goomerang_proto.codec import pack
from goomerang_proto.frames import OP_BINARY
from goomerang_proto.pb.goomerang_example_pb2 import BadReplyV1, MessageV1, ReplyV1

WAIT = 5.0


def echo(sender: Any, message: Message[Any]) -> Any:
    return sender.send(Message(ReplyV1(message=message.payload.message), message.headers))


async def started(**kwargs: Any) -> tuple[Server, list[BaseException]]:
    errors: list[BaseException] = []
    server = Server("127.0.0.1:0", on_error=errors.append, **kwargs)
    server.handle(MessageV1, echo)
    server.register_message(ReplyV1)
    server.handle(BadReplyV1, lambda _s, _m: None)  # never replies
    await server.start()
    return server, errors


def test_server_max_message_size_closes_with_1009() -> None:
    async def main() -> None:
        server, _errors = await started(max_message_size=1000)
        peer = await RawPeer.connect(server.addr)
        peer.send_frame(OP_BINARY, pack(Message(MessageV1(message="x" * 900))))  # fits
        peer.send_frame(OP_BINARY, pack(Message(MessageV1(message="y" * 2000))))  # too big
        frames: list[tuple[int, bytes]] = []
        while not any(op == 0x8 for op, _ in frames):
            frames += await peer.next_frames()
        assert frames[0][0] == OP_BINARY  # the reply to the message that fitted
        close = next(p for op, p in frames if op == 0x8)
        assert int.from_bytes(close[:2], "big") == 1009
        assert await peer.eof()
        # The asyncio client sees the same close code.
        client = Client(server.addr, heartbeat_interval=None)
        hooks = HookWait().watch(client, "on_status_change")
        await client.connect()
        await client.send(Message(MessageV1(message="z" * 2000)))
        await hooks.until(lambda: client.status is Status.CLOSED)
        assert client.close_code == 1009
        await server.shutdown(timeout=2.0)

    run(main())


def test_client_max_message_size_closes_with_1009() -> None:
    async def main() -> None:
        server = Server("127.0.0.1:0")
        # a small request, a reply above the client's limit (which its own sends respect)
        server.handle(MessageV1, lambda s, m: s.send(Message(ReplyV1(message="w" * 1000))))
        await server.start()
        errors: list[BaseException] = []
        client = Client(
            server.addr, heartbeat_interval=None, max_message_size=500, on_error=errors.append
        )
        client.register_message(ReplyV1)
        await client.connect()
        with pytest.raises(ConnectionLost):
            await client.send_sync(Message(MessageV1(message="small")))
        assert client.close_code == 1009
        assert errors
        await server.shutdown(timeout=2.0)

    run(main())


def test_max_pending_sync_raises_too_many_pending() -> None:
    async def main() -> None:
        server, _errors = await started()
        client = Client(server.addr, heartbeat_interval=None, max_pending_sync=3)
        await client.connect()
        waiting = [
            asyncio.ensure_future(client.send_sync(Message(BadReplyV1(message="x")), timeout=WAIT))
            for _ in range(3)
        ]
        await asyncio.sleep(0)  # let the three register
        with pytest.raises(TooManyPending):
            await client.send_sync(Message(BadReplyV1(message="x")))
        await client.close()
        for task in waiting:
            with pytest.raises(ConnectionLost):
                await task
        await server.shutdown(timeout=2.0)

    run(main())


@pytest.mark.parametrize("path", ["/ws", "/custom"])
def test_max_request_size_refuses_a_huge_header(path: str) -> None:
    async def main() -> None:
        server, _errors = await started(max_request_size=4096)
        server_routes = server.routes
        assert "/custom" not in server_routes
        request = upgrade_request(server.addr, path=path, headers=[("X-Big", "a" * 20_000)])
        status, _head = await http_exchange(server.addr, request)
        assert status in (431, 400)
        # A normal request still works afterwards.
        peer = await RawPeer.connect(server.addr)
        peer.abort()
        await server.shutdown(timeout=2.0)

    run(main())
