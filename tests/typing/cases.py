"""Uses of the public API, checked by ``mypy --strict`` in test_typing.py (never run).

A line ending in ``# error`` must be reported; every other line must pass.
"""

from __future__ import annotations

from typing import Any

from goomerang_io import Client, Message, Sender, Server
from goomerang_io import sync as blocking
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1


def on_message(sender: Sender, message: Message[MessageV1]) -> None:
    print(message.payload.message)


async def on_message_async(sender: Sender, message: Message[MessageV1]) -> None:
    await sender.send(Message(ReplyV1(message=message.payload.message)))


def on_reply(sender: Sender, message: Message[ReplyV1]) -> None:
    print(message.payload.message)


def one_argument(message: Message[MessageV1]) -> None:
    print(message)


def middleware(next_handler: Any) -> Any:
    return next_handler


async def correct() -> None:
    server = Server("127.0.0.1:0", max_concurrency=1, shutdown_timeout=2.0, client_publish=False)
    server.handle(MessageV1, on_message)
    server.handle(MessageV1, on_message_async)
    server.middleware(middleware)
    client = Client("127.0.0.1:8080", reconnect=True, heartbeat_interval=None, on_error=print)
    client.handle(ReplyV1, on_reply)
    got = await client.send_sync(Message(MessageV1(message="hi")), reply=ReplyV1)
    text: str = got.payload.message
    untyped = await client.send_sync(Message(MessageV1()))
    print(text, untyped.payload)
    b = blocking.Client("127.0.0.1:8080", max_pending_sync=10)
    r = b.send_sync(Message(MessageV1()), 1.0, reply=ReplyV1)
    print(r.payload.message)


async def incorrect() -> None:
    server = Server("127.0.0.1:0", max_conns=5)  # error
    Server("127.0.0.1:0", shutdown_timeout="10")  # error
    server.handle(ReplyV1, on_message)  # error
    server.handle(MessageV1, one_argument)  # error
    client = Client("127.0.0.1:8080", reconnect="yes")  # error
    Client("127.0.0.1:8080", max_conns=5)  # error
    got = await client.send_sync(Message(MessageV1()), reply=ReplyV1)
    number: int = got.payload.message  # error
    await client.send_sync(Message(MessageV1()), timeout="3")  # error
    blocking.Client("127.0.0.1:8080", heartbeat_interval="5")  # error
    print(number)
