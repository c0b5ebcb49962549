"""One connection to Redis for the Redis backplanes: its client, pub/sub and tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

FAULTS = (RedisError, OSError, asyncio.TimeoutError, EOFError)
"""What a Redis call raises when Redis or the path to it fails."""


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs and status)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class Session:
    """One connection to Redis: a client, its pub/sub, and the tasks using them."""

    def __init__(self, client: aioredis.Redis, pubsub: Any) -> None:
        self.client = client
        self.pubsub = pubsub
        self.connected = False
        self.acks: dict[tuple[str, bytes], deque[asyncio.Future[None]]] = {}
        self.pong: asyncio.Future[None] | None = None
        self.sender: asyncio.Task[None] | None = None
        self.listener: asyncio.Task[None] | None = None
        self.consumers: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def close(self) -> None:
        """Cancel the session's tasks and waiters, then close its connections (never raises)."""
        for task in (self.sender, self.listener, *self.consumers.values()):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, *FAULTS):
                    await task
        if self.pong is not None and not self.pong.done():
            self.pong.cancel()
        for waiters in self.acks.values():
            for fut in waiters:
                if not fut.done():
                    fut.cancel()
        self.acks.clear()
        with contextlib.suppress(*FAULTS, RuntimeError):
            await self.pubsub.aclose()
        with contextlib.suppress(*FAULTS, RuntimeError):
            await self.client.aclose()
