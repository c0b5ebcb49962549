"""What a Redis backplane has yet to send: a bounded queue, flushed in ordered batches."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from .redis_session import FAULTS

PUBLISH = 0
"""An outbox entry sent with the publish command (PUBLISH, or SPUBLISH on a cluster)."""
XADD = 1
"""An outbox entry appended to a queue-group stream (XADD with an approximate MAXLEN)."""


class Outbox:
    """Messages for the other nodes, in order: at most ``max_items`` and ``max_bytes``.

    ``put`` never waits: past either bound the message is refused (the caller
    counts the drop). :meth:`send` takes batches of at most 512 messages and
    ``max_batch_bytes``, one batch in flight at a time.
    """

    def __init__(self, max_items: int, max_bytes: int, max_batch_bytes: int) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.max_batch_bytes = max_batch_bytes
        self.nbytes = 0
        self.sent = 0
        self._items: deque[tuple[bytes, bytes, int]] = deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()  # nothing queued or in flight
        self._overflowing = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, target: bytes, data: bytes, op: int = PUBLISH) -> bool:
        """Queue ``data`` for ``target`` (a channel, or a stream for XADD); False past a bound."""
        size = len(data)
        if len(self._items) >= self.max_items or self.nbytes + size > self.max_bytes:
            return False
        if self._overflowing and self.nbytes < self.max_bytes // 2:
            self._overflowing = False
        self._items.append((target, data, op))
        self.nbytes += size
        self._idle.clear()
        self._ready.set()
        return True

    def overflow(self) -> bool:
        """Note a refused ``put``; True for the first of an episode (report that one)."""
        first = not self._overflowing
        self._overflowing = True
        return first

    def clear(self) -> tuple[int, int]:
        """Drop everything queued; returns (messages, bytes) dropped."""
        dropped = (len(self._items), self.nbytes)
        self._items.clear()
        self.nbytes = 0
        return dropped

    async def wait_idle(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds until everything queued was sent (never raises)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def send(
        self,
        client: Any,
        publish_command: str,
        stream_maxlen: int,
        failed: Callable[[int, int, BaseException], None],
    ) -> None:
        """Send batches on ``client`` until cancelled; ``failed(messages, nbytes, exc)``.

        One message goes as one publish command, more as a non-transactional
        pipeline; a batch that fails is dropped (nothing is replayed).
        """
        outbox = self._items
        ready = self._ready
        while True:
            if not outbox:
                self._idle.set()
                ready.clear()
                await ready.wait()
                continue
            batch: list[tuple[bytes, bytes, int]] = []
            batch_bytes = 0
            while outbox and len(batch) < 512 and batch_bytes < self.max_batch_bytes:
                item = outbox.popleft()
                batch.append(item)
                batch_bytes += len(item[1])
            self.nbytes -= batch_bytes
            try:
                if len(batch) == 1 and batch[0][2] == PUBLISH:
                    await getattr(client, publish_command)(batch[0][0], batch[0][1])
                else:
                    pipe = client.pipeline(transaction=False)
                    for target, data, op in batch:
                        if op == XADD:
                            pipe.xadd(
                                target,
                                {b"e": data},
                                maxlen=stream_maxlen,
                                approximate=True,
                            )
                        else:
                            getattr(pipe, publish_command)(target, data)
                    await pipe.execute()
            except FAULTS as exc:
                failed(len(batch), batch_bytes, exc)
                continue
            self.sent += len(batch)
