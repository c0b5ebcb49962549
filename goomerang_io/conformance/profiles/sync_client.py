"""The client profile on ``goomerang_io.sync.Client`` (blocking, threads)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from goomerang_io import Message
from goomerang_io.sync import Client
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

from . import UNICODE_HEADERS, WAIT, Task, has_headers, m, report, texts


class Inbox:
    """Messages a client's MessageV1 handler got (reader thread), waitable by count."""

    def __init__(self) -> None:
        self.items: list[Message[Any]] = []
        self.cond = threading.Condition()

    def handler(self, _sender: Any, message: Message[Any]) -> None:
        with self.cond:
            self.items.append(message)
            self.cond.notify_all()

    def wait(self, pred: Callable[[list[Message[Any]]], bool]) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self.items), WAIT)


def client(task: Task) -> tuple[Client, Inbox]:
    inbox = Inbox()
    c = Client(task.addr)
    c.handle(MessageV1, inbox.handler)
    c.connect()
    return c, inbox


def do_send(task: Task) -> int:
    c, inbox = client(task)
    for i in range(task.n):
        c.send(m(f"m{i}"))
    ok = inbox.wait(lambda items: len(items) >= task.n)
    c.close()
    return report(task, ok and texts(inbox.items) == [f"m{i}" for i in range(task.n)])


def do_sync(task: Task) -> int:
    c, _ = client(task)
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda i: c.send_sync(m(f"s{i}"), WAIT), range(task.n)))
    c.close()
    return report(task, texts(replies) == [f"s{i}" for i in range(task.n)])


def do_headers(task: Task) -> int:
    c, inbox = client(task)
    ok = True
    for headers in (UNICODE_HEADERS, {}):
        c.send(m("h-async", headers))
        ok = ok and inbox.wait(has_headers(headers))
        reply = c.send_sync(m("h-sync", headers), WAIT)
        ok = ok and reply.headers == {**headers, "echo": "1"}
    c.close()
    return report(task, ok)


def do_big(task: Task) -> int:
    c, inbox = client(task)
    text = "b" * task.size
    c.send(m(text))
    ok = inbox.wait(lambda items: text in texts(items))
    reply = c.send_sync(m(text), WAIT)
    c.close()
    return report(task, ok and reply.payload.message == text)


def do_pubsub(task: Task) -> int:
    sub, inbox = client(task)
    pub, _ = client(task)
    sub.subscribe(task.topic)
    sub.send_sync(m("barrier"), WAIT)  # the subscription is in place once this is answered
    for i in range(task.n):
        pub.publish(task.topic, m(f"p{i}", {"idx": str(i)}))
    ok = inbox.wait(lambda items: len(items) >= task.n)
    pub.close()
    sub.close()
    return report(task, ok and texts(inbox.items) == [f"p{i}" for i in range(task.n)])


def do_broadcast(task: Task) -> int:
    pairs = [client(task) for _ in range(task.clients + 1)]
    for i in range(task.n):
        pairs[0][0].broadcast(m(f"b{i}"))
    ok = True
    for _, inbox in pairs:
        ok = inbox.wait(lambda items: len(items) >= task.n) and ok
    for c, _ in pairs:
        c.close()
    return report(task, ok)


TASKS: dict[str, Callable[[Task], int]] = {
    "send": do_send,
    "sync": do_sync,
    "headers": do_headers,
    "big": do_big,
    "pubsub": do_pubsub,
    "broadcast": do_broadcast,
}


def main() -> int:
    """Run the task named by GOOMERANG_TASK; exit status 0 when complete."""
    return TASKS[Task.from_env().name](Task.from_env())


if __name__ == "__main__":
    sys.exit(main())
