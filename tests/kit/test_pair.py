"""The in-memory Pair: handlers, middlewares, sync replies, fan-out, closing, the virtual clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from goomerang_proto import HandlerError, Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1
from goomerang_proto.testing import Done, Pair, VirtualClock, drive


def m(text: str, headers: dict[str, str] | None = None) -> Message[Any]:
    return Message(MessageV1(message=text), headers or {})


def echo(sender: Any, message: Message[Any]) -> None:
    headers = dict(message.headers)
    if message.is_sync:
        headers["echo"] = "1"
    sender.send(Message(message.payload, headers))


def test_async_echo_and_sync_reply_reach_their_caller() -> None:
    pair = Pair()
    pair.server.handle(MessageV1, echo)
    pair.client.send(m("a", {"k": "v"}))
    reply = pair.client.request(m("s"))
    assert [x.payload.message for x in pair.client.received] == ["a"]
    assert pair.client.received[0].headers == {"k": "v"}
    assert reply.is_sync and reply.headers == {"echo": "1"} and reply.payload.message == "s"
    assert reply.creation_ns == pair.clock.wall_ns()  # the virtual wall clock stamps envelopes
    assert pair.server.sent[pair.client] == pair.client.inbox


def test_middlewares_run_in_registration_order_around_the_handler() -> None:
    calls: list[str] = []

    def mw(name: str) -> Any:
        def wrap(nxt: Any) -> Any:
            def handler(sender: Any, message: Message[Any]) -> Any:
                calls.append(name + ">")
                result = nxt(sender, message)
                calls.append("<" + name)
                return result

            return handler

        return wrap

    pair = Pair()
    pair.server.middleware(mw("outer"))
    pair.server.middleware(mw("inner"))
    pair.server.handle(MessageV1, lambda s, msg: calls.append("handler"))
    pair.client.send(m("x"))
    pair.run()
    assert calls == ["outer>", "inner>", "handler", "<inner", "<outer"]


def test_async_handlers_run_without_a_loop_and_with_a_given_runner() -> None:
    async def handler(sender: Any, message: Message[Any]) -> None:
        await asyncio.sleep(0)
        await sender.send(Message(ReplyV1(message=message.payload.message)))

    pair = Pair()
    pair.server.handle(MessageV1, handler)
    pair.server.register_message(ReplyV1)
    assert pair.client.request(m("no loop")).payload == ReplyV1(message="no loop")

    async def sleeper(sender: Any, message: Message[Any]) -> None:
        # a handler that needs a running loop: it waits for a callback the loop runs
        later = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(later.set_result, None)
        await later
        await sender.send(Message(ReplyV1(message="slept")))

    looped = Pair(runner=asyncio.run)
    looped.server.handle(MessageV1, sleeper)
    looped.server.register_message(ReplyV1)
    assert looped.client.request(m("x")).payload == ReplyV1(message="slept")

    loopless = Pair()
    loopless.server.handle(MessageV1, sleeper)
    loopless.client.send(m("x"))
    with pytest.raises(RuntimeError, match="needs an event loop"):
        loopless.run()


def test_drive_and_done() -> None:
    async def add(a: int) -> int:
        return a + await Done(41)

    assert drive(add(1)) == 42


def test_handler_errors_propagate_or_are_recorded() -> None:
    def broken(sender: Any, message: Message[Any]) -> None:
        raise ValueError("boom")

    pair = Pair()
    pair.server.handle(MessageV1, broken)
    pair.client.send(m("x"))
    with pytest.raises(ValueError, match="boom"):
        pair.run()

    quiet = Pair(raise_errors=False)
    quiet.server.handle(MessageV1, broken)
    quiet.client.send(m("x"))
    quiet.run()
    assert len(quiet.server.errors) == 1 and isinstance(quiet.server.errors[0], HandlerError)
    assert quiet.client.status is Status.RUNNING


def test_unknown_kind_without_handler_is_an_error_not_a_crash() -> None:
    pair = Pair()
    pair.server.register_message(ReplyV1)
    pair.client.send(Message(ReplyV1(message="nobody handles me")))
    pair.run()
    assert [type(e).__name__ for e in pair.server.errors] == ["UnknownKind"]


def test_broadcast_publish_subscribe_between_clients() -> None:
    pair = Pair()
    pair.server.register_message(MessageV1)
    other = pair.connect()
    other.subscribe("t")
    pair.run()
    pair.client.publish("t", m("pub", {"k": "v"}))
    pair.client.broadcast(m("all"))
    pair.run()
    assert [(x.payload.message, x.headers) for x in other.received] == [
        ("pub", {"k": "v"}),
        ("all", {}),
    ]
    assert [x.payload.message for x in pair.client.received] == ["all"]
    other.unsubscribe("t")
    pair.run()
    pair.client.publish("t", m("late"))
    pair.run()
    assert [x.payload.message for x in other.received] == ["pub", "all"]


def test_close_handshake_completes_on_both_sides() -> None:
    pair = Pair()
    second = pair.connect()
    pair.close_all()
    for client in (pair.client, second):
        assert client.status is Status.CLOSED
        assert client.server_conn is not None and client.server_conn.status is Status.CLOSED
        assert client.closed is not None and client.closed.code == 1000


def test_partial_reads_deliver_the_same_messages() -> None:
    whole, chunked = Pair(), Pair(chunk=3)
    for pair in (whole, chunked):
        pair.server.handle(MessageV1, echo)
        for i in range(5):
            pair.client.send(m(f"m{i}", {"i": str(i)}))
        pair.run()
    assert whole.client.received == chunked.client.received
    assert len(chunked.client.received) == 5


@pytest.mark.pure_python  # replaces an engine method or global: see tests/conftest.py
def test_advance_fires_each_deadline_at_its_own_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for the engine's get_timer/handle_timer pair (time only enters as arguments)."""
    pair = Pair()
    conn = pair.client.conn
    deadlines = [1.0, 2.5, 7.0]
    fired: list[float] = []

    def get_timer(self: object) -> float | None:
        return deadlines[0] if deadlines else None

    def handle_timer(self: object, now: float) -> None:
        fired.append(now)
        deadlines.pop(0)
        conn.ping(b"t")

    # on the class: engine connections have __slots__ (the server's class is another one)
    monkeypatch.setattr(type(conn), "get_timer", get_timer)
    monkeypatch.setattr(type(conn), "handle_timer", handle_timer)
    pair.advance(3.0)
    assert fired == [1.0, 2.5] and pair.clock.now == 3.0
    pair.advance(10.0)
    assert fired == [1.0, 2.5, 7.0] and pair.clock.now == 13.0
    with pytest.raises(ValueError):
        pair.advance(-1)


@pytest.mark.pure_python  # replaces an engine method or global: see tests/conftest.py
def test_a_timer_that_never_moves_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    pair = Pair(max_rounds=200)
    monkeypatch.setattr(type(pair.client.conn), "get_timer", lambda self: 0.5)
    monkeypatch.setattr(type(pair.client.conn), "handle_timer", lambda self, now: None)
    with pytest.raises(RuntimeError, match="timer"):
        pair.advance(1.0)


def test_virtual_clock() -> None:
    clock = VirtualClock(epoch_ns=10**18)
    assert clock.advance(1.5) == 1.5
    assert clock.wall_ns() == 10**18 + 1_500_000_000
    with pytest.raises(ValueError):
        clock.advance(-0.1)


def test_handlers_that_never_settle_are_reported() -> None:
    pair = Pair(max_rounds=200)
    other = pair.connect()
    pair.server.register_message(MessageV1)

    def ping_pong(sender: Any, message: Message[Any]) -> None:
        sender.send(message)

    for client in (pair.client, other):
        client.handle(MessageV1, ping_pong)
    pair.server.handle(MessageV1, ping_pong)
    pair.client.send(m("forever"))
    with pytest.raises(RuntimeError, match="did not settle"):
        pair.run()
