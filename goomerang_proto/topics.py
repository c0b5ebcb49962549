"""Publish/subscribe table: topic -> subscribers, with the reverse index."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

S = TypeVar("S", bound=Hashable)


class Topics(Generic[S]):
    """Which subscribers hold which topics. Pure data structure."""

    __slots__ = ("_by_sub", "_by_topic")

    def __init__(self) -> None:
        self._by_topic: dict[str, dict[S, None]] = {}
        self._by_sub: dict[S, set[str]] = {}

    def subscribe(self, topic: str, sub: S) -> bool:
        """Add ``sub`` to ``topic``; True when the topic had no subscriber before."""
        members = self._by_topic.get(topic)
        first = members is None
        if members is None:
            members = self._by_topic[topic] = {}
        members[sub] = None
        self._by_sub.setdefault(sub, set()).add(topic)
        return first

    def unsubscribe(self, topic: str, sub: S) -> bool:
        """Remove ``sub`` from ``topic``; True when the topic is now empty (and dropped)."""
        members = self._by_topic.get(topic)
        if members is None or sub not in members:
            return False
        del members[sub]
        topics = self._by_sub.get(sub)
        if topics is not None:
            topics.discard(topic)
            if not topics:
                del self._by_sub[sub]
        if not members:
            del self._by_topic[topic]
            return True
        return False

    def unsubscribe_all(self, sub: S) -> list[str]:
        """Remove ``sub`` everywhere (it disconnected); return the topics that became empty."""
        emptied = []
        for topic in list(self._by_sub.get(sub, ())):
            if self.unsubscribe(topic, sub):
                emptied.append(topic)
        self._by_sub.pop(sub, None)
        return emptied

    def subscribers(self, topic: str) -> list[S]:
        """Subscribers of ``topic`` in subscription order."""
        members = self._by_topic.get(topic)
        return list(members) if members else []

    def topics_of(self, sub: S) -> set[str]:
        """Topics ``sub`` holds."""
        return set(self._by_sub.get(sub, ()))

    def topics(self) -> list[str]:
        """Topics with at least one subscriber."""
        return list(self._by_topic)

    def __contains__(self, topic: object) -> bool:
        return topic in self._by_topic
