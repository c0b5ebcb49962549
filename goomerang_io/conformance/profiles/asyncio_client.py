"""The client profile on ``goomerang_io.Client`` (asyncio)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from goomerang_io import Client, Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

from . import UNICODE_HEADERS, WAIT, Task, has_headers, m, report, texts


class Inbox:
    """Messages a client's MessageV1 handler got, with a way to wait for a count."""

    def __init__(self) -> None:
        self.items: list[Message[Any]] = []
        self.changed = asyncio.Event()

    def handler(self, _sender: Any, message: Message[Any]) -> None:
        self.items.append(message)
        self.changed.set()

    async def wait(self, pred: Callable[[list[Message[Any]]], bool]) -> bool:
        async def until() -> None:
            while not pred(self.items):
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(until(), WAIT)
        except TimeoutError:
            return False
        return True


async def client(task: Task) -> tuple[Client, Inbox]:
    inbox = Inbox()
    c = Client(task.addr)
    c.handle(MessageV1, inbox.handler)
    await c.connect()
    return c, inbox


async def do_send(task: Task) -> int:
    c, inbox = await client(task)
    for i in range(task.n):
        await c.send(m(f"m{i}"))
    ok = await inbox.wait(lambda items: len(items) >= task.n)
    await c.close()
    return report(task, ok and texts(inbox.items) == [f"m{i}" for i in range(task.n)])


async def do_sync(task: Task) -> int:
    c, _ = await client(task)
    replies = await asyncio.gather(*(c.send_sync(m(f"s{i}"), WAIT) for i in range(task.n)))
    await c.close()
    return report(task, texts(list(replies)) == [f"s{i}" for i in range(task.n)])


async def do_headers(task: Task) -> int:
    c, inbox = await client(task)
    ok = True
    for headers in (UNICODE_HEADERS, {}):
        await c.send(m("h-async", headers))
        ok = ok and await inbox.wait(has_headers(headers))
        reply = await c.send_sync(m("h-sync", headers), WAIT)
        ok = ok and reply.headers == {**headers, "echo": "1"}
    await c.close()
    return report(task, ok)


async def do_big(task: Task) -> int:
    c, inbox = await client(task)
    text = "b" * task.size
    await c.send(m(text))
    ok = await inbox.wait(lambda items: text in texts(items))
    reply = await c.send_sync(m(text), WAIT)
    await c.close()
    return report(task, ok and reply.payload.message == text)


async def do_pubsub(task: Task) -> int:
    sub, inbox = await client(task)
    pub, _ = await client(task)
    await sub.subscribe(task.topic)
    await sub.send_sync(m("barrier"), WAIT)  # the subscription is in place once this is answered
    for i in range(task.n):
        await pub.publish(task.topic, m(f"p{i}", {"idx": str(i)}))
    ok = await inbox.wait(lambda items: len(items) >= task.n)
    await asyncio.gather(pub.close(), sub.close())
    return report(task, ok and texts(inbox.items) == [f"p{i}" for i in range(task.n)])


async def do_broadcast(task: Task) -> int:
    pairs = [await client(task) for _ in range(task.clients + 1)]
    sender = pairs[0][0]
    for i in range(task.n):
        await sender.broadcast(m(f"b{i}"))
    ok = True
    for _, inbox in pairs:
        ok = await inbox.wait(lambda items: len(items) >= task.n) and ok
    await asyncio.gather(*(c.close() for c, _ in pairs))
    return report(task, ok)


TASKS: dict[str, Callable[[Task], Coroutine[Any, Any, int]]] = {
    "send": do_send,
    "sync": do_sync,
    "headers": do_headers,
    "big": do_big,
    "pubsub": do_pubsub,
    "broadcast": do_broadcast,
}


def main() -> int:
    """Run the task named by GOOMERANG_TASK; exit status 0 when complete."""
    task = Task.from_env()
    return asyncio.run(TASKS[task.name](task))


if __name__ == "__main__":
    sys.exit(main())
