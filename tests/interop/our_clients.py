"""Our clients behind one blocking facade, so each interop case is written once.

``open_client(runtime, addr)`` gives a :class:`Peer` for the asyncio client on
the standard loop (``asyncio``) or on uvloop (``uvloop``), or for the blocking
client (``sync``). The asyncio client lives on its own loop in a thread; the
facade submits each call there and waits for it (bounded). Received messages
land in ``peer.inbox`` (a thread-safe queue), statuses in ``peer.statuses``,
and ``peer.closed`` is set by the ``on_close`` hook.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from goomerang_io import Client as AsyncClient
from goomerang_io.loop import new_event_loop
from goomerang_io.sync import Client as SyncClient
from goomerang_proto import Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import BadReplyV1, MessageV1, ReplyV1

T = TypeVar("T")
CLIENTS = ["asyncio", "uvloop", "sync"]
WAIT = 10.0


class Peer:
    """One connected client of ours, driven with plain blocking calls."""

    def __init__(self, addr: str, **options: Any) -> None:
        self.addr = addr
        self.options = {"heartbeat_interval": None, **options}
        self.inbox: queue.Queue[Message[Any]] = queue.Queue()
        self.statuses: list[Status] = []
        self.errors: list[BaseException] = []
        self.closed = threading.Event()

    def _setup(self, client: Any) -> Any:
        client.handle(MessageV1, lambda _sender, message: self.inbox.put(message))
        client.register_message(ReplyV1)
        client.register_message(BadReplyV1)
        client.on_status_change(self.statuses.append)
        client.on_close(self.closed.set)
        client.on_error(self.errors.append)
        return client

    # the operations; each runtime implements them
    def connect(self) -> None:
        raise NotImplementedError

    def send(self, message: Message[Any]) -> int:
        raise NotImplementedError

    def send_sync(self, message: Message[Any], timeout: float = WAIT) -> Message[Any]:
        raise NotImplementedError

    def broadcast(self, message: Message[Any]) -> int:
        raise NotImplementedError

    def publish(self, topic: str, message: Message[Any]) -> int:
        raise NotImplementedError

    def subscribe(self, topic: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def status(self) -> Status:
        raise NotImplementedError

    @property
    def close_code(self) -> int | None:
        raise NotImplementedError

    def stop(self) -> None:
        """Close if still running, and release the runtime (test cleanup)."""
        if self.status is Status.RUNNING:
            self.close()

    # waiting for what arrives
    def receive(self, pred: Callable[[Message[Any]], bool], timeout: float = WAIT) -> Message[Any]:
        """The next message matching ``pred`` (others are dropped); AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                message = self.inbox.get(timeout=max(left, 0.0))
            except queue.Empty:
                raise AssertionError(f"no matching message within {timeout} s") from None
            if pred(message):
                return message


class SyncPeer(Peer):
    """The blocking client (``goomerang_io.sync.Client``)."""

    def __init__(self, addr: str, **options: Any) -> None:
        super().__init__(addr, **options)
        self.client = self._setup(SyncClient(addr, **self.options))

    def connect(self) -> None:
        self.client.connect()

    def send(self, message: Message[Any]) -> int:
        return int(self.client.send(message))

    def send_sync(self, message: Message[Any], timeout: float = WAIT) -> Message[Any]:
        return self.client.send_sync(message, timeout=timeout)

    def broadcast(self, message: Message[Any]) -> int:
        return int(self.client.broadcast(message))

    def publish(self, topic: str, message: Message[Any]) -> int:
        return int(self.client.publish(topic, message))

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic)

    def close(self) -> None:
        self.client.close()

    @property
    def status(self) -> Status:
        return self.client.status

    @property
    def close_code(self) -> int | None:
        return self.client.close_code


class AsyncioPeer(Peer):
    """The asyncio client on its own loop (standard or uvloop) in a thread."""

    def __init__(self, addr: str, loop: str, **options: Any) -> None:
        super().__init__(addr, **options)
        self.loop = new_event_loop() if loop == "uvloop" else asyncio.SelectorEventLoop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = self._call(self._make())

    async def _make(self) -> AsyncClient:
        client: AsyncClient = self._setup(AsyncClient(self.addr, **self.options))
        return client

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = WAIT + 5) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def connect(self) -> None:
        self._call(self.client.connect())

    def send(self, message: Message[Any]) -> int:
        return self._call(self.client.send(message))

    def send_sync(self, message: Message[Any], timeout: float = WAIT) -> Message[Any]:
        return self._call(self.client.send_sync(message, timeout=timeout), timeout + 5)

    def broadcast(self, message: Message[Any]) -> int:
        return self._call(self.client.broadcast(message))

    def publish(self, topic: str, message: Message[Any]) -> int:
        return self._call(self.client.publish(topic, message))

    def subscribe(self, topic: str) -> None:
        self._call(self.client.subscribe(topic))

    def close(self) -> None:
        self._call(self.client.close())

    @property
    def status(self) -> Status:
        return self.client.status

    @property
    def close_code(self) -> int | None:
        return self.client.close_code

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT)
            self.loop.close()


def open_client(runtime: str, addr: str, **options: Any) -> Peer:
    """A connected client of ``runtime`` (one of ``CLIENTS``)."""
    peer: Peer = (
        SyncPeer(addr, **options) if runtime == "sync" else AsyncioPeer(addr, runtime, **options)
    )
    try:
        peer.connect()
    except BaseException:
        peer.stop()
        raise
    return peer
