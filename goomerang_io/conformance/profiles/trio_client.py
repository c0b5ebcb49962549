"""The client profile on ``goomerang_io.trio.Client`` (the ``trio`` extra)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import trio

from goomerang_io import Message
from goomerang_io.trio import Client
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

from . import UNICODE_HEADERS, WAIT, Task, has_headers, m, report, texts


class Inbox:
    """Messages a client's MessageV1 handler got, with a way to wait for a count."""

    def __init__(self) -> None:
        self.items: list[Message[Any]] = []
        self.changed = trio.Event()

    def handler(self, _sender: Any, message: Message[Any]) -> None:
        self.items.append(message)
        self.changed.set()

    async def wait(self, pred: Callable[[list[Message[Any]]], bool]) -> bool:
        with trio.move_on_after(WAIT):
            while not pred(self.items):
                self.changed = trio.Event()
                await self.changed.wait()
            return True
        return False


async def client(stack: AsyncExitStack, task: Task) -> tuple[Client, Inbox]:
    """A connected client whose reader runs until ``stack`` closes."""
    inbox = Inbox()
    c = Client(task.addr)
    c.handle(MessageV1, inbox.handler)
    await stack.enter_async_context(c)
    return c, inbox


async def do_send(stack: AsyncExitStack, task: Task) -> bool:
    c, inbox = await client(stack, task)
    for i in range(task.n):
        await c.send(m(f"m{i}"))
    ok = await inbox.wait(lambda items: len(items) >= task.n)
    return ok and texts(inbox.items) == [f"m{i}" for i in range(task.n)]


async def do_sync(stack: AsyncExitStack, task: Task) -> bool:
    c, _ = await client(stack, task)
    replies: list[Message[Any] | None] = [None] * task.n

    async def one(i: int) -> None:
        replies[i] = await c.send_sync(m(f"s{i}"), WAIT)

    async with trio.open_nursery() as nursery:
        for i in range(task.n):
            nursery.start_soon(one, i)
    return [r.payload.message if r else None for r in replies] == [f"s{i}" for i in range(task.n)]


async def do_headers(stack: AsyncExitStack, task: Task) -> bool:
    c, inbox = await client(stack, task)
    ok = True
    for headers in (UNICODE_HEADERS, {}):
        await c.send(m("h-async", headers))
        ok = ok and await inbox.wait(has_headers(headers))
        reply = await c.send_sync(m("h-sync", headers), WAIT)
        ok = ok and reply.headers == {**headers, "echo": "1"}
    return ok


async def do_big(stack: AsyncExitStack, task: Task) -> bool:
    c, inbox = await client(stack, task)
    text = "b" * task.size
    await c.send(m(text))
    ok = await inbox.wait(lambda items: text in texts(items))
    reply = await c.send_sync(m(text), WAIT)
    return ok and reply.payload.message == text


async def do_pubsub(stack: AsyncExitStack, task: Task) -> bool:
    sub, inbox = await client(stack, task)
    pub, _ = await client(stack, task)
    await sub.subscribe(task.topic)
    await sub.send_sync(m("barrier"), WAIT)  # the subscription is in place once this is answered
    for i in range(task.n):
        await pub.publish(task.topic, m(f"p{i}", {"idx": str(i)}))
    ok = await inbox.wait(lambda items: len(items) >= task.n)
    return ok and texts(inbox.items) == [f"p{i}" for i in range(task.n)]


async def do_broadcast(stack: AsyncExitStack, task: Task) -> bool:
    pairs = [await client(stack, task) for _ in range(task.clients + 1)]
    for i in range(task.n):
        await pairs[0][0].broadcast(m(f"b{i}"))
    ok = True
    for _, inbox in pairs:
        ok = await inbox.wait(lambda items: len(items) >= task.n) and ok
    return ok


TASKS: dict[str, Callable[[AsyncExitStack, Task], Awaitable[bool]]] = {
    "send": do_send,
    "sync": do_sync,
    "headers": do_headers,
    "big": do_big,
    "pubsub": do_pubsub,
    "broadcast": do_broadcast,
}


async def run(task: Task) -> int:
    """Run ``task``; every client closes (``async with`` exit) before the report."""
    async with AsyncExitStack() as stack:
        ok = await TASKS[task.name](stack, task)
    return report(task, ok)


def main() -> int:
    """Run the task named by GOOMERANG_TASK; exit status 0 when complete."""
    return trio.run(run, Task.from_env())


if __name__ == "__main__":
    sys.exit(main())
