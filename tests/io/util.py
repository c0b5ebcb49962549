"""Shared helpers of the end-to-end tests: loop runner, started server, connected client, inbox.

Everything is real sockets on 127.0.0.1 with ephemeral ports. Every wait is
bounded (``asyncio.timeout``); nothing synchronises on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from goomerang_io import Client, Server
from goomerang_io.loop import run as loop_run
from goomerang_proto import Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

T = TypeVar("T")

WAIT = 5.0
"""Default bound, in seconds, of every wait in these tests."""


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run ``coro`` on a fresh uvloop loop, bounded by ``timeout`` seconds."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return loop_run(bounded())


def msg(text: str = "hello", headers: dict[str, str] | None = None) -> Message[MessageV1]:
    """A MessageV1 message."""
    return Message(MessageV1(message=text), dict(headers or {}))


def reply(text: str, headers: dict[str, str] | None = None) -> Message[ReplyV1]:
    """A ReplyV1 message."""
    return Message(ReplyV1(message=text), dict(headers or {}))


class Inbox:
    """Collects items (messages, hook arguments) and lets a test wait for them."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def put(self, item: Any) -> None:
        """Record ``item`` and wake the waiters."""
        self.items.append(item)
        self._changed.set()

    def __call__(self, *args: Any) -> None:
        """Use as a hook or handler: records the single argument, or the tuple of them."""
        self.put(args[0] if len(args) == 1 else args)

    async def wait_until(self, pred: Callable[[list[Any]], bool], timeout: float = WAIT) -> None:
        """Wait until ``pred(items)`` is true (AssertionError after ``timeout``)."""
        try:
            async with asyncio.timeout(timeout):
                while not pred(self.items):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"condition not met within {timeout} s; items: {self.items!r}"
            ) from None

    async def wait_count(self, n: int, timeout: float = WAIT) -> list[Any]:
        """Wait for at least ``n`` items; return the list."""
        await self.wait_until(lambda items: len(items) >= n, timeout)
        return self.items

    async def wait_for(self, pred: Callable[[Any], bool], timeout: float = WAIT) -> Any:
        """Wait for an item matching ``pred``; return the first one."""
        await self.wait_until(lambda items: any(pred(i) for i in items), timeout)
        return next(i for i in self.items if pred(i))


def recorder_handler(inbox: Inbox) -> Callable[[Any, Message[Any]], None]:
    """A handler that records every message it receives."""

    def handler(_sender: Any, message: Message[Any]) -> None:
        inbox.put(message)

    return handler


def echo(sender: Any, message: Message[Any]) -> Any:
    """Server handler: answer with ReplyV1 carrying the same text and headers."""
    return sender.send(reply(message.payload.message, message.headers))


def new_server(**kwargs: Any) -> Server:
    """A Server on 127.0.0.1 with an ephemeral port (keyword arguments pass through)."""
    return Server("127.0.0.1:0", **kwargs)


def new_client(server: Server, **kwargs: Any) -> Client:
    """A Client for ``server`` (pings off unless asked for; keyword arguments pass through)."""
    kwargs.setdefault("heartbeat_interval", None)
    return Client(server.addr, **kwargs)


@contextlib.asynccontextmanager
async def running(server: Server) -> AsyncIterator[Server]:
    """Start ``server``; shut it down on exit when it is still running."""
    async with asyncio.timeout(WAIT):
        await server.start()
    try:
        yield server
    finally:
        if server.status is Status.RUNNING:
            async with asyncio.timeout(WAIT + 2):
                await server.shutdown()


@contextlib.asynccontextmanager
async def connected(client: Client) -> AsyncIterator[Client]:
    """Connect ``client``; close it on exit when it is still running."""
    async with asyncio.timeout(WAIT):
        await client.connect()
    try:
        yield client
    finally:
        if client.status is Status.RUNNING:
            async with asyncio.timeout(WAIT + 2):
                await client.close()
