"""The runtime-neutral event rules (goomerang_io.handling), without any IO or loop.

The runtimes' own suites (test_trio.py, test_runtimes.py, the conformance suite)
check them over real connections; here each rule is driven by hand with fakes.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from goomerang_io.authorization import ERROR_HEADER, ERROR_REPLIES
from goomerang_io.endpoint import Endpoint
from goomerang_io.engines import client_engine, server_engine
from goomerang_io.handling.client_events import ClientEvents, prepare_router, sendable
from goomerang_io.handling.commands import CommandRules
from goomerang_io.handling.fanout import fan_out
from goomerang_io.handling.handlers import on_failure
from goomerang_io.handling.pending import PendingRequests
from goomerang_io.handling.requests import Requests
from goomerang_io.hooks import CLIENT_HOOKS
from goomerang_io.options import ClientOptions, ServerOptions, refuse_unsupported
from goomerang_io.sender import Sender
from goomerang_proto import (
    Closing,
    ConnectionLost,
    Message,
    NotRunning,
    Router,
    Side,
    Status,
    SyncTimeout,
    TooManyPending,
    UnexpectedReply,
    UnknownKind,
)
from goomerang_proto import events as ev
from goomerang_proto.errors import PermissionDenied, RemoteError
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1


def msg(text: str = "x", uuid: str = "", is_sync: bool = False) -> Message[Any]:
    return Message(MessageV1(message=text), uuid=uuid, is_sync=is_sync)


class FakeEngine:
    def __init__(self, extensions: frozenset[str] = frozenset()) -> None:
        self.status = Status.RUNNING
        self.extensions = extensions


class FakeConn:
    """A connection as the rules see it: records what is sent back."""

    def __init__(self, error_replies: bool = True, conn_id: int = 1) -> None:
        self.conn_id, self.peer, self.identity = conn_id, ("127.0.0.1", 1), None
        self.error_replies = error_replies
        self.engine = FakeEngine()
        self.sender = Sender(self)
        self.subscriptions: set[tuple[str, str]] = set()
        self.sent: list[tuple[Message[Any], str]] = []
        self.frames: list[bytes] = []

    def send_message(self, message: Message[Any], uuid: str) -> None:
        self.sent.append((message, uuid))

    def write_prepared(self, frame: bytes, *, in_response: bool = False) -> bool:
        self.frames.append(frame)
        return True

    def close(self, code: int = 1000) -> None:
        pass


# ---------------------------------------------------------------- pending table
def test_a_reply_settles_its_request_once_and_a_late_one_is_reported() -> None:
    table, woken = PendingRequests(2), []
    waiter = table.open("u1", lambda: woken.append("u1"))
    assert table.reply(msg("r", "u1", True)) is None
    assert woken == ["u1"] and waiter.result("late").payload.message == "r"
    late = table.reply(msg("again", "u1", True))
    assert isinstance(late, UnexpectedReply) and "u1" in str(late)
    assert len(table) == 0 and woken == ["u1"]


def test_the_table_is_bounded_and_a_request_times_out_or_fails() -> None:
    table = PendingRequests(1)
    waiter = table.open("a", lambda: None)
    with pytest.raises(TooManyPending, match="max_pending_sync=1"):
        table.open("b", lambda: None)
    with pytest.raises(SyncTimeout, match="nothing came"):
        waiter.result("nothing came")
    assert table.fail("a", ConnectionLost("gone")) and not table.fail("a", ConnectionLost("x"))
    with pytest.raises(ConnectionLost, match="gone"):
        waiter.result("unused")


class PendingMachine(RuleBasedStateMachine):
    """Any sequence of opens, replies, failures and give-ups: each waiter is settled at most
    once, woken exactly when settled, and the table never holds more than its limit."""

    uuids = Bundle("uuids")

    def __init__(self) -> None:
        super().__init__()
        self.table = PendingRequests(3)
        self.waiters: dict[str, Any] = {}
        self.wakes: dict[str, int] = {}
        self.count = 0

    @rule(target=uuids)
    def open(self) -> str:
        self.count += 1
        uuid = f"u{self.count}"
        if len(self.table) >= 3:
            with pytest.raises(TooManyPending):
                self.table.open(uuid, lambda: None)
            return uuid
        self.wakes[uuid] = 0
        self.waiters[uuid] = self.table.open(uuid, lambda: self._woke(uuid))
        return uuid

    def _woke(self, uuid: str) -> None:
        self.wakes[uuid] += 1

    @rule(uuid=uuids)
    def reply(self, uuid: str) -> None:
        waiting = uuid in self.waiters and self.wakes[uuid] == 0 and self._open(uuid)
        late = self.table.reply(msg("r", uuid, True))
        assert (late is None) == waiting

    @rule(uuid=uuids)
    def fail(self, uuid: str) -> None:
        waiting = uuid in self.waiters and self.wakes[uuid] == 0 and self._open(uuid)
        assert self.table.fail(uuid, ConnectionLost("x")) == waiting

    @rule(uuid=consumes(uuids))
    def give_up(self, uuid: str) -> None:
        self.table.discard(uuid)

    @rule()
    def fail_all(self) -> None:
        self.table.fail_all(ConnectionLost("all"))

    def _open(self, uuid: str) -> bool:
        return uuid in self.table._waiters

    @invariant()
    def bounded_and_woken_once(self) -> None:
        assert len(self.table) <= 3
        for uuid, waiter in self.waiters.items():
            settled = waiter.reply is not None or waiter.error is not None
            assert self.wakes[uuid] == (1 if settled else 0)


TestPendingMachine = PendingMachine.TestCase


# -------------------------------------------------------------- client events
class FakeClient(Endpoint):
    def __init__(self) -> None:
        self.server = "127.0.0.1:9"
        self.errors: list[BaseException] = []
        self.statuses: list[Status] = []
        self._setup(ClientOptions, CLIENT_HOOKS, Side.CLIENT, {}, "Client")
        self.hooks.add("on_error", self.errors.append)
        self.hooks.add("on_status_change", self.statuses.append)
        self.router.handle(MessageV1, lambda sender, message: None)
        prepare_router(self.router)


def connected_client(extensions: frozenset[str] = frozenset({ERROR_REPLIES})) -> Any:
    client = FakeClient()
    events = ClientEvents(client)
    conn = FakeConn()
    conn.engine = FakeEngine(extensions)
    assert events.handle(conn, ev.Connected("/ws")) is None
    return client, events, conn


def test_client_statuses_follow_go_when_the_server_closes_cleanly() -> None:
    client, events, conn = connected_client()
    waiter = events.pending.open("u", lambda: None)
    events.handle(conn, ev.ConnectionClosed(1000, "bye", by_peer=True))
    assert client.statuses == [Status.RUNNING, Status.CLOSING, Status.CLOSED]
    assert client.errors == []  # 1000 is clean: nothing reported
    with pytest.raises(ConnectionLost):
        waiter.result("unused")


@pytest.mark.parametrize(("code", "reported"), [(1001, False), (1005, False), (1006, True)])
def test_only_an_unclean_end_is_reported(code: int, reported: bool) -> None:
    client, events, conn = connected_client()
    events.handle(conn, ev.ConnectionClosed(code, "", by_peer=True))
    assert [type(e) for e in client.errors] == ([ConnectionLost] if reported else [])
    assert client.status is Status.CLOSED


def test_the_users_close_is_not_a_loss() -> None:
    client, events, conn = connected_client()
    with pytest.raises(ValueError):
        events.begin_close(1005)  # no Close frame carries it
    events.begin_close(1000)
    events.handle(conn, ev.ConnectionClosed(1000, "", by_peer=False))
    events.end_close()
    assert client.statuses == [Status.RUNNING, Status.CLOSING, Status.CLOSED]
    assert client.errors == []
    with pytest.raises(NotRunning, match="nothing to close"):
        events.begin_close(1000)


def test_error_replies_fail_their_request_or_are_reported() -> None:
    client, events, conn = connected_client()
    waiter = events.pending.open("u", lambda: None)
    failed = Message(
        StringValue(value="boom"), {ERROR_HEADER: "handler-error"}, uuid="u", is_sync=True
    )
    assert events.handle(conn, ev.SyncReplyReceived(failed)) is None
    with pytest.raises(RemoteError, match="boom"):
        waiter.result("unused")
    refused = Message(StringValue(value="no"), {ERROR_HEADER: "forbidden"})
    assert events.handle(conn, ev.MessageReceived(refused)) is None
    assert [type(e) for e in client.errors] == [PermissionDenied]


def test_without_negotiation_an_error_shaped_message_is_a_message() -> None:
    client, events, conn = connected_client(frozenset())
    lookalike = Message(StringValue(value="hi"), {ERROR_HEADER: "forbidden"})
    assert events.handle(conn, ev.MessageReceived(lookalike)) is None  # no handler: reported
    assert [str(e) for e in client.errors] == ["no handler for kind 'google.protobuf.StringValue'"]


def test_messages_become_jobs_and_unknown_replies_fail_at_once() -> None:
    client, events, conn = connected_client()
    job = events.handle(conn, ev.MessageReceived(msg("hi")))
    assert job is not None and job[2].payload.message == "hi" and job[1].conn_id == 1
    waiter = events.pending.open("u", lambda: None)
    events.handle(conn, ev.ErrorOccurred(UnknownKind("some.Kind", "u")))
    with pytest.raises(UnknownKind):
        waiter.result("unused")
    assert [type(e) for e in client.errors] == [UnknownKind]


def test_sendable_names_why_nothing_can_be_sent() -> None:
    engine = FakeEngine()
    assert sendable(Status.RUNNING, engine) is engine  # type: ignore[type-var]
    with pytest.raises(Closing):
        sendable(Status.CLOSING, engine)  # type: ignore[type-var]
    with pytest.raises(NotRunning, match="connect"):
        sendable(Status.NEW, None)
    engine.status = Status.CLOSED
    with pytest.raises(NotRunning, match="lost"):
        sendable(Status.RUNNING, engine)  # type: ignore[type-var]


# ------------------------------------------------------------- server requests
def requests_with(handler: Any) -> tuple[Requests, list[BaseException]]:
    router, errors = Router(), []
    if handler is not None:
        router.handle(MessageV1, handler)
    router.freeze()
    return Requests(router, errors.append), errors


@pytest.mark.parametrize("negotiated", [True, False])
def test_no_handler_is_reported_and_a_negotiated_request_answered(negotiated: bool) -> None:
    requests, errors = requests_with(None)
    conn = FakeConn(error_replies=negotiated)
    assert requests.handler_for(msg("q", "u", True), conn) is None
    assert [str(e) for e in errors] == [
        "no handler for sync request kind 'goomerang.example.MessageV1'"
    ]
    codes = [(m.headers[ERROR_HEADER], uuid) for m, uuid in conn.sent]
    assert codes == ([("no-handler", "u")] if negotiated else [])


def test_a_failing_sync_handler_is_answered_without_its_internals() -> None:
    def boom(sender: Any, message: Any) -> None:
        raise ValueError("secret")

    requests, _ = requests_with(boom)
    conn = FakeConn()
    chain = requests.handler_for(msg("q", "u", True), conn)
    assert chain is not None
    with pytest.raises(ValueError):
        chain(conn.sender, msg("q", "u", True))
    [(reply, uuid)] = conn.sent
    assert uuid == "u" and "secret" not in reply.payload.value
    assert reply.headers[ERROR_HEADER] == "handler-error"


def test_an_async_handler_failure_is_answered_when_awaited() -> None:
    async def boom(sender: Any, message: Any) -> None:
        raise ValueError("later")

    conn, failed = FakeConn(), []
    chain = on_failure(boom, failed.append)
    coro = chain(conn.sender, msg())
    assert failed == []  # nothing ran yet
    with pytest.raises(ValueError):
        coro.send(None)
    assert len(failed) == 1


# ------------------------------------------------------------ client commands
def rules(**options: Any) -> tuple[CommandRules, list[BaseException]]:
    errors: list[BaseException] = []
    return CommandRules(ServerOptions(**options), errors.append), errors


def test_the_empty_topic_is_reported_and_ignored_everywhere() -> None:
    r, errors = rules()
    conn = FakeConn()
    assert not r.publish(conn, "", msg())
    assert not r.subscribe(conn, "", "", conn.subscriptions)
    assert not r.unsubscribe("", "", conn.subscriptions)
    assert len(errors) == 3 and all("empty topic" in str(e) for e in errors)
    assert conn.sent == []  # reported here, not an authorization refusal


def test_subscriptions_per_connection_are_capped() -> None:
    r, errors = rules(max_subscriptions=2)
    conn = FakeConn()
    assert r.subscribe(conn, "a", "", conn.subscriptions)
    assert r.subscribe(conn, "b", "", conn.subscriptions)
    assert r.subscribe(conn, "a", "", conn.subscriptions)  # held already: no new place
    assert not r.subscribe(conn, "c", "", conn.subscriptions)
    assert "max_subscriptions=2" in str(errors[0])
    assert r.unsubscribe("a", "", conn.subscriptions)
    assert r.subscribe(conn, "c", "", conn.subscriptions)  # its place was freed


def test_refusals_are_reported_and_told_to_a_negotiated_peer() -> None:
    r, errors = rules(client_publish=("room.*",), client_broadcast=False)
    conn, silent = FakeConn(), FakeConn(error_replies=False)
    assert r.publish(conn, "room.1", msg())
    assert not r.publish(conn, "lobby", msg())
    assert not r.broadcast(silent, msg())
    assert [type(e) for e in errors] == [PermissionDenied, PermissionDenied]
    assert [m.headers[ERROR_HEADER] for m, _ in conn.sent] == ["forbidden"]
    assert silent.sent == []  # the Go peer gets nothing


def test_a_veto_that_raises_or_is_async_refuses() -> None:
    async def later(sender: Any, topic: str) -> bool:
        return True

    def boom(sender: Any, message: Any) -> bool:
        raise RuntimeError("check failed")

    errors: list[BaseException] = []
    r = CommandRules(ServerOptions(), errors.append, can_subscribe=later, can_broadcast=boom)
    conn = FakeConn()
    assert not r.subscribe(conn, "t", "", conn.subscriptions) and conn.subscriptions == set()
    assert not r.broadcast(conn, msg())
    assert "awaitable" in str(errors[0]) and "RuntimeError" in str(errors[1])


def test_rules_of_the_wrong_type_fail_where_they_are_set() -> None:
    with pytest.raises(TypeError, match="can_publish"):
        CommandRules(ServerOptions(), print, can_publish="yes")  # type: ignore[arg-type]
    options = ServerOptions(client_subscribe=["a.*"])  # type: ignore[arg-type]
    CommandRules(options, print)
    assert options.client_subscribe == ("a.*",)


# ------------------------------------------------------------- fan-out, engines
def test_fan_out_reports_each_target_and_skips_the_closed() -> None:
    live, gone = FakeConn(conn_id=1), FakeConn(conn_id=2)
    gone.engine.status = Status.CLOSED
    results = fan_out(msg("all"), [live, gone], None, lambda *r: r)
    assert [(r[0], r[2], r[3]) for r in results] == [(5, 1, True), (5, 2, False)]
    assert len(live.frames) == 1 and gone.frames == []


def test_engines_take_the_options() -> None:
    server = server_engine(ServerOptions(ping_interval=0, slow_client_limit=0), None, 0.0)  # type: ignore[arg-type]
    assert server.ping_interval is None and server.max_buffered is None
    client = client_engine(ClientOptions(write_limit=1000), "::1", 80, "/ws", (), None, 0.0)  # type: ignore[arg-type]
    assert client.host == "[::1]:80" and client.high_water == 1000


def test_an_option_a_runtime_lacks_is_refused_not_ignored() -> None:
    refuse_unsupported(ServerOptions(), ("max_connections",), "trio")
    with pytest.raises(TypeError, match="max_connections is not supported on the trio runtime"):
        refuse_unsupported(ServerOptions(max_connections=5), ("max_connections",), "trio")


def test_no_error_reply_on_a_connection_that_ended() -> None:
    requests, _ = requests_with(None)
    conn = FakeConn()
    conn.engine.status = Status.CLOSED
    requests.error(UnknownKind("some.Kind", "u"), conn)
    assert conn.sent == []
