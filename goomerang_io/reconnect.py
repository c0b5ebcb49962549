"""What a client keeps between connections: the reconnect backoff and its subscriptions.

Shared by the asyncio and the blocking client (runtime-neutral: no IO, no clock).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from goomerang_proto import ClientConnection, GoomerangError


class Backoff:
    """The waits between reconnect attempts (``reconnect_initial``, ``reconnect_max``).

    Each wait is ``delay`` seconds jittered to 50-100 % of it; ``delay`` starts
    at ``initial`` and doubles after each failed attempt, up to ``maximum``.
    """

    def __init__(self, initial: float, maximum: float) -> None:
        self.delay = initial
        self.maximum = maximum
        self.attempt = 0

    def next_wait(self) -> float:
        """Count one more attempt (``attempt``); return the seconds to wait before it."""
        self.attempt += 1
        return self.delay * (0.5 + random.random() / 2)

    def failed(self) -> None:
        """The attempt failed: the next wait is twice as long (at most ``maximum``)."""
        self.delay = min(self.delay * 2, self.maximum)


class HeldSubscriptions:
    """The topics and queue groups a client holds: subscribed again after a reconnect."""

    def __init__(self) -> None:
        self.topics: set[str] = set()
        self.groups: set[tuple[str, str]] = set()

    def __bool__(self) -> bool:
        return bool(self.topics or self.groups)

    def add(self, topic: str, group: str | None = None) -> None:
        """The client subscribed to ``topic`` (or joined its queue ``group``)."""
        if group is None:
            self.topics.add(topic)
        else:
            self.groups.add((topic, group))

    def discard(self, topic: str, group: str | None = None) -> None:
        """The client unsubscribed from ``topic`` (or left its queue ``group``)."""
        if group is None:
            self.topics.discard(topic)
        else:
            self.groups.discard((topic, group))

    def replay(
        self, engine: ClientConnection, report_error: Callable[[BaseException], None]
    ) -> None:
        """Subscribe ``engine`` to every held topic, then join every held group (sorted).

        A group the new server refuses (it lacks the queue-groups extension) is
        reported, not raised.
        """
        for topic in sorted(self.topics):
            engine.subscribe(topic)
        for topic, group in sorted(self.groups):
            try:
                engine.subscribe(topic, group)
            except GoomerangError as exc:  # the new server lacks queue groups
                report_error(exc)
