"""Our clients behind one blocking facade, so each interop case is written once.

``open_client(runtime, addr)`` gives a :class:`Peer` for the asyncio client on
the standard loop (``asyncio``) or on uvloop (``uvloop``), for the blocking
client (``sync``) or for the trio client (``trio``). The asyncio and trio
clients live on their own loop in a thread; the facade submits each call there
and waits for it (bounded). Received messages
land in ``peer.inbox`` (a thread-safe queue), statuses in ``peer.statuses``,
and ``peer.closed`` is set by the ``on_close`` hook.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

from goomerang_io import Client as AsyncClient
from goomerang_io.loop import new_event_loop
from goomerang_io.sync import Client as SyncClient
from goomerang_io.trio import Client as TrioClient
from goomerang_proto import Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import BadReplyV1, MessageV1, ReplyV1

T = TypeVar("T")
CLIENTS = ["asyncio", "uvloop", "sync", "trio"]
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


class TrioPeer(Peer):
    """The trio client in ``trio.run`` on its own thread; ``async with client`` spans the test."""

    def __init__(self, addr: str, **options: Any) -> None:
        import trio

        super().__init__(addr, **options)
        self.trio = trio
        self.client = self._setup(TrioClient(addr, **self.options))
        self._started: queue.Queue[BaseException | None] = queue.Queue()
        self._token: Any = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self.thread.start()
        assert self._ready.wait(WAIT), "trio did not start"

    async def _main(self) -> None:
        trio = self.trio
        self._token = trio.lowlevel.current_trio_token()
        self._go, self._stop = trio.Event(), trio.Event()
        self._ready.set()
        await self._go.wait()
        try:
            async with self.client:  # connects; closes (if still running) on exit
                self._started.put(None)
                await self._stop.wait()
        except BaseException as exc:
            self._started.put(exc)
            raise

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.trio.from_thread.run(partial(fn, *args, **kwargs), trio_token=self._token)

    def connect(self) -> None:
        self.trio.from_thread.run_sync(self._go.set, trio_token=self._token)
        error = self._started.get(timeout=WAIT + 5)
        if error is not None:
            raise error

    def send(self, message: Message[Any]) -> int:
        return int(self._call(self.client.send, message))

    def send_sync(self, message: Message[Any], timeout: float = WAIT) -> Message[Any]:
        reply: Message[Any] = self._call(self.client.send_sync, message, timeout=timeout)
        return reply

    def broadcast(self, message: Message[Any]) -> int:
        return int(self._call(self.client.broadcast, message))

    def publish(self, topic: str, message: Message[Any]) -> int:
        return int(self._call(self.client.publish, topic, message))

    def subscribe(self, topic: str) -> None:
        self._call(self.client.subscribe, topic)

    def close(self) -> None:
        self._call(self.client.close)

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
            if self.thread.is_alive() and self._token is not None:
                try:
                    self.trio.from_thread.run_sync(self._go.set, trio_token=self._token)
                    self.trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
                except self.trio.RunFinishedError:
                    pass
            self.thread.join(WAIT)


def open_client(runtime: str, addr: str, **options: Any) -> Peer:
    """A connected client of ``runtime`` (one of ``CLIENTS``)."""
    peer: Peer
    if runtime == "sync":
        peer = SyncPeer(addr, **options)
    elif runtime == "trio":
        peer = TrioPeer(addr, **options)
    else:
        peer = AsyncioPeer(addr, runtime, **options)
    try:
        peer.connect()
    except BaseException:
        peer.stop()
        raise
    return peer
