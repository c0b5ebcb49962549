"""Client programs that follow the conformance client profile, one per client runtime.

Run by ``goomerang conformance client -- python -m
goomerang_io.conformance.profiles.asyncio_client`` (or ``.uvloop_client``,
``.sync_client``, ``.trio_client``: the ``trio`` extra); they read
the task from ``GOOMERANG_TASK`` and the other ``GOOMERANG_*`` variables
(see ``goomerang_io.conformance.client_mode``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from goomerang_proto import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

UNICODE_HEADERS = {"uni": "héllo wörld ✓ 日本語 🚀", "empty": "", "ключ": "значение", "k": "v"}
WAIT = 10.0


@dataclass(frozen=True)
class Task:
    """The task the runner asks for, from the environment."""

    name: str
    addr: str
    n: int
    topic: str
    clients: int
    size: int

    @classmethod
    def from_env(cls) -> Task:
        """Read ``GOOMERANG_TASK``, ``_ADDR``, ``_N``, ``_TOPIC``, ``_CLIENTS``, ``_SIZE``."""
        env = os.environ
        return cls(
            env["GOOMERANG_TASK"],
            env["GOOMERANG_ADDR"],
            int(env.get("GOOMERANG_N", "10")),
            env.get("GOOMERANG_TOPIC", "conformance.topic"),
            int(env.get("GOOMERANG_CLIENTS", "2")),
            int(env.get("GOOMERANG_SIZE", str(512 * 1024))),
        )


def report(task: Task, complete: bool, **extra: object) -> int:
    """Print the one JSON line of the profile; return the exit status (0 when complete)."""
    print(json.dumps({"mode": task.name, "complete": complete, **extra}), flush=True)
    return 0 if complete else 1


def m(text: str, headers: dict[str, str] | None = None) -> Message[Any]:
    """A MessageV1 with ``text`` and a copy of ``headers``."""
    return Message(MessageV1(message=text), dict(headers or {}))


def texts(items: list[Message[Any]]) -> list[str]:
    """The texts of received MessageV1s, in order."""
    return [x.payload.message for x in items]


def has_headers(headers: dict[str, str]) -> Callable[[list[Message[Any]]], bool]:
    """A predicate: some received message carries exactly ``headers``."""
    return lambda items: any(x.headers == headers for x in items)
