"""Status table, Router composition and freezing, Topics against a dict-of-sets model."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from goomerang_proto.errors import IllegalTransition, RouterFrozen
from goomerang_proto.pb import goomerang_example_pb2 as ex
from goomerang_proto.router import Router
from goomerang_proto.status import Lifecycle, Side, Status, can_transition
from goomerang_proto.topics import Topics

N, R, CING, CED = Status.NEW, Status.RUNNING, Status.CLOSING, Status.CLOSED
EXPECTED = {
    Side.SERVER: {(N, R), (N, CED), (R, CING), (R, CED), (CING, CED)},
    Side.CLIENT: {(N, R), (N, CED), (R, CING), (R, CED), (CING, CED), (CED, R)},
}


# -------------------------------------------------------------------- status
def test_status_values_are_the_metric_values() -> None:
    assert [(s.name, int(s)) for s in Status] == [
        ("NEW", 0),
        ("RUNNING", 1),
        ("CLOSING", 2),
        ("CLOSED", 3),
    ]


@pytest.mark.parametrize("side", list(Side))
def test_transition_table(side: Side) -> None:
    allowed = {(a, b) for a in Status for b in Status if can_transition(side, a, b)}
    assert allowed == EXPECTED[side]


@pytest.mark.parametrize("side", list(Side))
@pytest.mark.parametrize("start", list(Status))
@pytest.mark.parametrize("target", list(Status))
def test_lifecycle_moves_or_raises(side: Side, start: Status, target: Status) -> None:
    life = Lifecycle(side)
    assert life.status is N and life.side is side
    for a, b in _path_to(side, start):
        assert life.move(b) is a
    assert life.status is start
    if (start, target) in EXPECTED[side]:
        assert life.move(target) is start
        assert life.status is target
    else:
        with pytest.raises(IllegalTransition) as info:
            life.move(target)
        assert start.name in str(info.value) and target.name in str(info.value)
        assert life.status is start  # a refused move changes nothing


def _path_to(side: Side, target: Status) -> list[tuple[Status, Status]]:
    return {
        N: [],
        R: [(N, R)],
        CING: [(N, R), (R, CING)],
        CED: [(N, R), (R, CING), (CING, CED)],
    }[target]


def test_server_cannot_restart_but_client_can_reconnect() -> None:
    server, client = Lifecycle(Side.SERVER), Lifecycle(Side.CLIENT)
    for life in (server, client):
        life.move(R)
        life.move(CED)
    with pytest.raises(IllegalTransition):
        server.move(R)
    client.move(R)
    assert client.status is R


@given(st.sampled_from(list(Side)), st.lists(st.sampled_from(list(Status)), max_size=30))
def test_lifecycle_follows_the_table_for_any_sequence(side: Side, moves: list[Status]) -> None:
    life = Lifecycle(side)
    current = N
    for target in moves:
        if (current, target) in EXPECTED[side]:
            life.move(target)
            current = target
        else:
            with pytest.raises(IllegalTransition):
                life.move(target)
        assert life.status is current


# -------------------------------------------------------------------- router
def _tracing(log: list[str], name: str) -> Any:
    def middleware(nxt: Any) -> Any:
        def handler(sender: Any, message: Any) -> Any:
            log.append(f"{name}>")
            result = nxt(sender, message)
            log.append(f"<{name}")
            return result

        return handler

    return middleware


def test_first_registered_middleware_is_outermost() -> None:
    log: list[str] = []
    router = Router()
    router.middleware(_tracing(log, "a"))
    router.middleware(_tracing(log, "b"))
    router.middleware(_tracing(log, "c"))

    def handler(sender: Any, message: Any) -> str:
        log.append("handler")
        return "done"

    router.handle(ex.MessageV1, handler)
    router.freeze()
    chain = router.resolve("goomerang.example.MessageV1")
    assert chain is not None
    assert chain("sender", "msg") == "done"
    assert log == ["a>", "b>", "c>", "handler", "<c", "<b", "<a"]
    assert router.resolve("goomerang.example.ReplyV1") is None
    assert "goomerang.example.MessageV1" in router.registry


@given(st.integers(0, 8))
def test_middleware_order_for_any_count(n: int) -> None:
    log: list[str] = []
    router = Router()
    for i in range(n):
        router.middleware(_tracing(log, str(i)))
    router.handle(ex.MessageV1, lambda s, m: log.append("h"))
    for frozen in (False, True):
        if frozen:
            router.freeze()
        log.clear()
        chain = router.resolve("goomerang.example.MessageV1")
        assert chain is not None
        chain(None, None)
        assert log == [f"{i}>" for i in range(n)] + ["h"] + [f"<{i}" for i in reversed(range(n))]


def test_registering_after_freeze_raises() -> None:
    router = Router()
    router.handle(ex.MessageV1, lambda s, m: None)
    router.freeze()
    router.freeze()  # idempotent
    assert router.frozen
    with pytest.raises(RouterFrozen):
        router.handle(ex.ReplyV1, lambda s, m: None)
    with pytest.raises(RouterFrozen):
        router.middleware(lambda nxt: nxt)
    with pytest.raises(RouterFrozen):
        router.register_message(ex.BadReplyV1)
    assert router.kinds() == ["goomerang.example.MessageV1"]
    assert "goomerang.example.BadReplyV1" not in router.registry


def test_chains_are_built_once_at_freeze() -> None:
    built: list[int] = []

    def counting(nxt: Any) -> Any:
        built.append(1)
        return nxt

    router = Router()
    router.middleware(counting)
    router.handle(ex.MessageV1, lambda s, m: None)
    router.freeze()
    assert len(built) == 1
    for _ in range(3):
        router.resolve("goomerang.example.MessageV1")
    assert len(built) == 1


def test_router_rejects_non_callables() -> None:
    router = Router()
    with pytest.raises(TypeError):
        router.handle(ex.MessageV1, "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        router.middleware(42)  # type: ignore[arg-type]


def test_later_handler_replaces_earlier() -> None:
    router = Router()
    router.handle(ex.MessageV1, lambda s, m: 1)
    router.handle(ex.MessageV1, lambda s, m: 2)
    router.freeze()
    chain = router.resolve("goomerang.example.MessageV1")
    assert chain is not None and chain(None, None) == 2


# -------------------------------------------------------------------- topics
TOPIC = st.sampled_from(["a", "b", "c", "d"])
SUB = st.integers(0, 4)


class TopicsModel(RuleBasedStateMachine):
    """Topics against a dict of ordered subscriber lists."""

    def __init__(self) -> None:
        super().__init__()
        self.topics: Topics[int] = Topics()
        self.model: dict[str, list[int]] = {}

    @rule(topic=TOPIC, sub=SUB)
    def subscribe(self, topic: str, sub: int) -> None:
        first = topic not in self.model
        members = self.model.setdefault(topic, [])
        if sub not in members:
            members.append(sub)
        assert self.topics.subscribe(topic, sub) is first

    @rule(topic=TOPIC, sub=SUB)
    def unsubscribe(self, topic: str, sub: int) -> None:
        members = self.model.get(topic, [])
        emptied = False
        if sub in members:
            members.remove(sub)
            if not members:
                del self.model[topic]
                emptied = True
        assert self.topics.unsubscribe(topic, sub) is emptied

    @rule(sub=SUB)
    def unsubscribe_all(self, sub: int) -> None:
        emptied = []
        for topic in list(self.model):
            members = self.model[topic]
            if sub in members:
                members.remove(sub)
                if not members:
                    del self.model[topic]
                    emptied.append(topic)
        assert sorted(self.topics.unsubscribe_all(sub)) == sorted(emptied)

    @invariant()
    def same_as_model(self) -> None:
        assert sorted(self.topics.topics()) == sorted(self.model)
        for topic in ["a", "b", "c", "d"]:
            assert self.topics.subscribers(topic) == self.model.get(topic, [])
            assert (topic in self.topics) is (topic in self.model)
        for sub in range(5):
            expected = {t for t, members in self.model.items() if sub in members}
            assert self.topics.topics_of(sub) == expected


TopicsModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
TestTopicsModel = TopicsModel.TestCase
