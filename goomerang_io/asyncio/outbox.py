"""The asyncio client's outbox: what is sent while it reconnects, sent in order once back."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from goomerang_proto import ClientConnection, GoomerangError, Message
from goomerang_proto.errors import OutboxFull


class Outbox:
    """At most ``size`` messages (``outbox_size``) waiting for the reconnect.

    Each entry is a send, a broadcast or a publish (with its topic); errors
    while sending or dropping them go to ``report_error`` (never raised).
    """

    def __init__(self, report_error: Callable[[BaseException], None]) -> None:
        self._items: deque[tuple[str, Message[Any], str]] = deque()
        self._report_error = report_error

    def __len__(self) -> int:
        return len(self._items)

    def put(self, size: int, what: str, message: Message[Any], topic: str = "") -> int:
        """Queue ``message`` (``what``: send, broadcast, publish); its payload size in bytes.

        Raises OutboxFull when ``size`` messages already wait.
        """
        if len(self._items) >= size:
            raise OutboxFull(
                f"{len(self._items)} messages already wait for the reconnect (outbox_size={size})"
            )
        self._items.append((what, message, topic))
        return int(message.payload.ByteSize())

    def send_all(self, engine: ClientConnection) -> None:
        """Send what waited for the reconnect, in order (after the re-subscribes)."""
        while self._items:
            what, message, topic = self._items.popleft()
            try:
                if what == "send":
                    engine.send(message)
                elif what == "broadcast":
                    engine.broadcast(message)
                else:
                    engine.publish(topic, message)
            except GoomerangError as exc:
                self._report_error(exc)

    def drop(self, why: str) -> None:
        """Drop everything queued, reporting how many and ``why``."""
        if self._items:
            count = len(self._items)
            self._items.clear()
            self._report_error(GoomerangError(f"{count} queued message(s) dropped: {why}"))
