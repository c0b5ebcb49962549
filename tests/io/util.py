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
from goomerang_proto import ClientConnection, Message, ServerConnection, Status, events
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


async def poll_until(pred: Callable[[], bool], timeout: float = WAIT) -> None:
    """Yield to the loop until ``pred()`` holds (bounded by ``timeout``).

    Only for internal state that has no event of its own (e.g. a transport
    whose reading was paused); it waits on the condition, never on a duration.
    """
    try:
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0)
    except TimeoutError:
        raise AssertionError(f"condition not met within {timeout} s") from None


class MutePeer:
    """A WebSocket peer driven by the sans-IO engine that stops writing once connected.

    It keeps reading (so the kernel buffers never fill) but never answers a
    ping or a close: the misbehaving peer of the keep-alive and close tests.
    """

    def __init__(
        self,
        engine: ClientConnection | ServerConnection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.engine = engine
        self.reader = reader
        self.writer = writer
        self.eof = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def handshake(self) -> None:
        """Exchange the upgrade (writing our side of it), then go mute."""
        async with asyncio.timeout(WAIT):
            self.writer.write(self.engine.data_to_send())
            while True:
                if any(isinstance(e, events.Connected) for e in self.engine.events()):
                    self.writer.write(self.engine.data_to_send())
                    break
                data = await self.reader.read(65536)
                if not data:
                    raise AssertionError("peer closed during the upgrade")
                self.engine.receive_data(data)
        self._task = asyncio.ensure_future(self._drain_input())

    async def _drain_input(self) -> None:
        while await self.reader.read(65536):
            pass
        self.eof.set()

    def close(self) -> None:
        """Drop the TCP connection."""
        if self._task is not None:
            self._task.cancel()
        self.writer.close()


async def mute_client(server: Server) -> MutePeer:
    """A client that completes the upgrade to ``server`` and then never writes again."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    peer = MutePeer(ClientConnection(server.addr, "/ws"), reader, writer)
    await peer.handshake()
    return peer


@contextlib.asynccontextmanager
async def mute_server() -> AsyncIterator[tuple[str, list[MutePeer]]]:
    """A fake server on 127.0.0.1 that accepts the upgrade and then never writes again."""
    peers: list[MutePeer] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = MutePeer(ServerConnection(), reader, writer)
        peers.append(peer)
        await peer.handshake()

    tcp = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", peers
    finally:
        for peer in peers:
            peer.close()
        tcp.close()
