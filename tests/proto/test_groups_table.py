"""Property tests of the queue-group table (goomerang_proto.topics.Groups)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from goomerang_proto import Groups

TOPICS = st.sampled_from(["a", "b"])
GROUPS = st.sampled_from(["g", "h"])
SUBS = st.integers(min_value=0, max_value=5)


class GroupTable(RuleBasedStateMachine):
    """Random joins, leaves, disconnects and picks against a plain model."""

    def __init__(self) -> None:
        super().__init__()
        self.table: Groups[int] = Groups()
        self.model: dict[tuple[str, str], list[int]] = {}

    @rule(topic=TOPICS, group=GROUPS, sub=SUBS)
    def join(self, topic: str, group: str, sub: int) -> None:
        members = self.model.setdefault((topic, group), [])
        added = self.table.join(topic, group, sub)
        assert added == (sub not in members)
        if added:
            members.append(sub)

    @rule(topic=TOPICS, group=GROUPS, sub=SUBS)
    def leave(self, topic: str, group: str, sub: int) -> None:
        members = self.model.get((topic, group), [])
        removed = self.table.leave(topic, group, sub)
        assert removed == (sub in members)
        if removed:
            members.remove(sub)

    @rule(sub=SUBS)
    def disconnect(self, sub: int) -> None:
        expected = sorted(k for k, members in self.model.items() if sub in members)
        assert self.table.leave_all(sub) == expected
        for key in expected:
            self.model[key].remove(sub)

    @rule(topic=TOPICS, group=GROUPS, banned=st.frozensets(SUBS))
    def pick(self, topic: str, group: str, banned: frozenset[int]) -> None:
        members = self.model.get((topic, group), [])
        got = self.table.pick(topic, group, lambda s: s not in banned)
        if any(m not in banned for m in members):
            assert got in members and got not in banned
        else:
            assert got is None

    @invariant()
    def same_members(self) -> None:
        for (topic, group), members in self.model.items():
            assert self.table.members(topic, group) == members
            assert (group in self.table.groups(topic)) == bool(members)
        for topic in ("a", "b"):
            live = any(m for (t, _g), m in self.model.items() if t == topic)
            assert (topic in self.table) == live
        for sub in range(6):
            held = {k for k, members in self.model.items() if sub in members}
            assert self.table.memberships(sub) == held


TestGroupTable = GroupTable.TestCase
TestGroupTable.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(min_value=1, max_value=12), rounds=st.integers(min_value=1, max_value=6))
def test_round_robin_gives_every_member_the_same_share(n: int, rounds: int) -> None:
    table: Groups[int] = Groups()
    for sub in range(n):
        table.join("t", "g", sub)
    picks = Counter(table.pick("t", "g") for _ in range(n * rounds))
    assert picks == dict.fromkeys(range(n), rounds)


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=8),
    before=st.integers(min_value=0, max_value=20),
    gone=st.data(),
)
def test_a_member_leaving_keeps_the_rotation_fair(n: int, before: int, gone: st.DataObject) -> None:
    table: Groups[int] = Groups()
    for sub in range(n):
        table.join("t", "g", sub)
    for _ in range(before):
        table.pick("t", "g")
    leaver = gone.draw(st.integers(min_value=0, max_value=n - 1))
    table.leave("t", "g", leaver)
    rest = [s for s in range(n) if s != leaver]
    # the next n - 1 picks visit every remaining member exactly once
    assert sorted(table.pick("t", "g") for _ in rest) == rest


def test_skipped_member_keeps_its_turn() -> None:
    table: Groups[str] = Groups()
    for sub in "abc":
        table.join("t", "g", sub)
    assert table.pick("t", "g") == "a"
    assert table.pick("t", "g", lambda s: s != "b") == "c"
    assert table.pick("t", "g") == "a"
    assert table.pick("t", "g") == "b"
    assert table.pick("t", "g", lambda s: False) is None
    assert table.pick("t", "nobody") is None
