"""Publish/subscribe tables: topic -> subscribers, and topic -> queue group -> members."""

from __future__ import annotations

from collections.abc import Callable, Hashable
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


class Groups(Generic[S]):
    """Queue groups: topic -> group -> members, with a round-robin choice. Pure data structure.

    Each message published to a topic goes to exactly one member of each of
    its groups (NATS queue groups; an extension outside goomerang v0.3.0).
    The choice is **round robin** over the members in join order: ``pick``
    starts after the member picked last and returns the first member that
    ``eligible`` accepts (the caller skips closing members and members over
    their write limit), so with every member eligible, ``n * k`` picks over
    ``n`` members give each exactly ``k``. A member joins a group at most once
    (joining again is a no-op) and may hold any number of groups and topics.
    """

    __slots__ = ("_by_sub", "_by_topic", "_cursor")

    def __init__(self) -> None:
        self._by_topic: dict[str, dict[str, list[S]]] = {}
        self._cursor: dict[tuple[str, str], int] = {}
        self._by_sub: dict[S, set[tuple[str, str]]] = {}

    def join(self, topic: str, group: str, sub: S) -> bool:
        """Add ``sub`` to ``group`` on ``topic``; False when it was a member already."""
        groups = self._by_topic.setdefault(topic, {})
        members = groups.setdefault(group, [])
        if sub in members:
            return False
        members.append(sub)
        self._by_sub.setdefault(sub, set()).add((topic, group))
        return True

    def leave(self, topic: str, group: str, sub: S) -> bool:
        """Remove ``sub`` from ``group`` on ``topic``; False when it was not a member."""
        groups = self._by_topic.get(topic)
        members = groups.get(group) if groups is not None else None
        if members is None or sub not in members:
            return False
        index = members.index(sub)
        del members[index]
        key = (topic, group)
        cursor = self._cursor.get(key, 0)
        if index < cursor:
            self._cursor[key] = cursor - 1  # the next member to pick stays the same
        held = self._by_sub.get(sub)
        if held is not None:
            held.discard(key)
            if not held:
                del self._by_sub[sub]
        if not members:
            assert groups is not None
            del groups[group]
            self._cursor.pop(key, None)
            if not groups:
                del self._by_topic[topic]
        return True

    def leave_all(self, sub: S) -> list[tuple[str, str]]:
        """Remove ``sub`` from every group (it disconnected); return the ``(topic, group)`` left."""
        left = sorted(self._by_sub.get(sub, ()))
        for topic, group in left:
            self.leave(topic, group, sub)
        return left

    def groups(self, topic: str) -> list[str]:
        """Groups with at least one member on ``topic``, in creation order."""
        return list(self._by_topic.get(topic, ()))

    def members(self, topic: str, group: str) -> list[S]:
        """Members of ``group`` on ``topic`` in join order."""
        return list(self._by_topic.get(topic, {}).get(group, ()))

    def memberships(self, sub: S) -> set[tuple[str, str]]:
        """The ``(topic, group)`` pairs ``sub`` belongs to."""
        return set(self._by_sub.get(sub, ()))

    def pick(self, topic: str, group: str, eligible: Callable[[S], bool] | None = None) -> S | None:
        """The next member of ``group`` on ``topic`` in round-robin order that is eligible.

        Members for which ``eligible(member)`` is False are skipped (and keep
        their turn for the next pick). Returns None when the group has no
        member or none is eligible.
        """
        members = self._by_topic.get(topic, {}).get(group)
        if not members:
            return None
        n = len(members)
        key = (topic, group)
        start = self._cursor.get(key, 0) % n
        for step in range(n):
            index = (start + step) % n
            member = members[index]
            if eligible is None or eligible(member):
                self._cursor[key] = index + 1
                return member
        return None

    def __contains__(self, topic: object) -> bool:
        return topic in self._by_topic
