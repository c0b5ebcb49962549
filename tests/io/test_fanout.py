"""Broadcast (client and server) and publish/subscribe over real sockets, with their hooks."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from rawws import RawPeer
from util import (
    WAIT,
    Inbox,
    connected,
    echo,
    msg,
    new_client,
    new_server,
    recorder_handler,
    run,
    running,
)

from goomerang_io import BroadcastResult, Client, Server
from goomerang_proto import Message, ServerConnection, UnknownKind
from goomerang_proto.codec import pack_broadcast_cmd
from goomerang_proto.frames import OP_BINARY, build_frame
from goomerang_proto.pb.goomerang_example_pb2 import BadReplyV1, MessageV1, ReplyV1

MARK = "barrier"
_markers = itertools.count()


def fanout_server(**kwargs: Any) -> tuple[Server, Inbox]:
    """A server that knows MessageV1/ReplyV1 (to decode commands) and records its hooks."""
    hooks = Inbox()
    server = new_server(**kwargs)
    server.handle(MessageV1, echo)  # sync round trips for barrier()
    server.register_message(ReplyV1)
    for name in (
        "on_broadcast",
        "on_client_broadcast",
        "on_subscribe",
        "on_unsubscribe",
        "on_publish",
        "on_disconnect",
    ):
        server.add_hook(name, lambda *args, _name=name: hooks.put((_name, *args)))
    return server, hooks


@asynccontextmanager
async def clients(server: Server, n: int) -> AsyncIterator[list[tuple[Client, Inbox]]]:
    """``n`` connected clients, each recording the MessageV1/ReplyV1 messages it receives."""
    async with AsyncExitStack() as stack:
        out = []
        for _ in range(n):
            box = Inbox()
            client = new_client(server)
            client.handle(MessageV1, recorder_handler(box))
            client.handle(ReplyV1, recorder_handler(box))
            await stack.enter_async_context(connected(client))
            out.append((client, box))
        yield out


def texts(box: Inbox) -> list[str]:
    """Texts received, barrier markers left out."""
    return [m.payload.message for m in box.items if not m.payload.message.startswith(MARK)]


async def barrier(server: Server, boxes: list[Inbox], via: Client | None = None) -> None:
    """Server-broadcast a marker and wait until every client got it.

    Messages on one connection are processed in order, so whatever a client
    was sent before the marker has been handled once the marker arrives.
    ``via``: the client that just sent a command; a sync round trip on its
    connection first makes sure the server handled that command.
    """
    if via is not None:
        await via.send_sync(msg("sync"), timeout=WAIT)
    marker = f"{MARK}-{next(_markers)}"
    await server.broadcast(Message(ReplyV1(message=marker)))
    for box in boxes:
        await box.wait_until(lambda items: any(m.payload.message == marker for m in items))


def hook_calls(hooks: Inbox, name: str) -> list[tuple[Any, ...]]:
    return [item[1:] for item in hooks.items if item[0] == name]


def test_client_broadcast_reaches_every_client_including_the_sender() -> None:
    async def main() -> None:
        server, hooks = fanout_server()
        async with running(server), clients(server, 3) as cs:
            sender = cs[0][0]
            size = await sender.broadcast(msg("to all", {"k": "v"}))
            assert size > 0
            for _client, box in cs:
                (m,) = await box.wait_count(1)
                assert m.payload == MessageV1(message="to all")
                assert m.headers == {"k": "v"}
                assert m.kind == "goomerang.example.MessageV1"
            assert hook_calls(hooks, "on_client_broadcast") == [("goomerang.example.MessageV1",)]
            ((kind, results, duration),) = hook_calls(hooks, "on_broadcast")
            assert kind == "goomerang.example.MessageV1"
            assert len(results) == 3 and all(r.ok for r in results)
            assert isinstance(duration, float) and duration >= 0

    run(main())


def test_server_broadcast_returns_per_client_results() -> None:
    async def main() -> None:
        server, hooks = fanout_server()
        async with running(server), clients(server, 4) as cs:
            message = Message(ReplyV1(message="from server"), {"h": "1"})
            results = await server.broadcast(message)
            assert len(results) == 4
            assert all(isinstance(r, BroadcastResult) and r.ok for r in results)
            assert len({r.conn_id for r in results}) == 4
            assert {r.size for r in results} == {ReplyV1(message="from server").ByteSize()}
            assert all(r.duration >= 0 for r in results)
            for _client, box in cs:
                (m,) = await box.wait_count(1)
                assert m.payload == ReplyV1(message="from server")
                assert m.headers == {"h": "1"}
            ((kind, hook_results, _duration),) = hook_calls(hooks, "on_broadcast")
            assert kind == "goomerang.example.ReplyV1"
            assert hook_results == results
            assert hook_calls(hooks, "on_client_broadcast") == []

    run(main())


def test_server_broadcast_with_no_clients_returns_empty() -> None:
    async def main() -> None:
        server, _hooks = fanout_server()
        async with running(server):
            assert await server.broadcast(msg()) == []

    run(main())


def test_publish_reaches_only_subscribers_and_stops_after_unsubscribe() -> None:
    async def main() -> None:
        server, hooks = fanout_server()
        async with running(server), clients(server, 3) as cs:
            (a, box_a), (b, box_b), (c, box_c) = cs
            boxes = [box_a, box_b, box_c]
            await a.subscribe("news")
            await b.subscribe("news")
            await hooks.wait_until(lambda _: len(hook_calls(hooks, "on_subscribe")) == 2)
            assert hook_calls(hooks, "on_subscribe") == [("news",), ("news",)]

            await c.publish("news", msg("first", {"k": "v"}))  # c is not subscribed
            await barrier(server, boxes, via=c)
            assert texts(box_a) == ["first"]
            assert texts(box_b) == ["first"]
            assert texts(box_c) == []
            assert box_a.items[0].headers == {"k": "v"}
            assert hook_calls(hooks, "on_publish") == [("news", "goomerang.example.MessageV1")]

            await a.unsubscribe("news")
            await hooks.wait_until(lambda _: len(hook_calls(hooks, "on_unsubscribe")) == 1)
            assert hook_calls(hooks, "on_unsubscribe") == [("news",)]
            await b.publish("news", msg("second"))  # the publisher is a subscriber
            await barrier(server, boxes, via=b)
            assert texts(box_a) == ["first"]
            assert texts(box_b) == ["first", "second"]
            assert texts(box_c) == []

            await c.publish("other", msg("nobody listens"))
            await barrier(server, boxes, via=c)
            assert "nobody listens" not in texts(box_a) + texts(box_b) + texts(box_c)
            assert hook_calls(hooks, "on_publish")[-1] == ("other", "goomerang.example.MessageV1")

    run(main())


def test_publish_stops_after_the_subscriber_disconnects() -> None:
    async def main() -> None:
        server, hooks = fanout_server()
        async with running(server), clients(server, 2) as cs:
            (a, box_a), (b, box_b) = cs
            await a.subscribe("t")
            await b.subscribe("t")
            await hooks.wait_until(lambda _: len(hook_calls(hooks, "on_subscribe")) == 2)
            results = await server.publish("t", Message(ReplyV1(message="both")))
            assert len(results) == 2
            await box_a.wait_count(1)
            await box_b.wait_count(1)

            await asyncio.wait_for(a.close(), WAIT)
            await hooks.wait_until(lambda _: len(hook_calls(hooks, "on_disconnect")) == 1)
            results = await server.publish("t", Message(ReplyV1(message="only b")))
            assert len(results) == 1
            await b.publish("t", msg("from b"))
            await barrier(server, [box_b], via=b)
            assert texts(box_b) == ["both", "only b", "from b"]
            assert texts(box_a) == ["both"]

            await asyncio.wait_for(b.close(), WAIT)
            await hooks.wait_until(lambda _: len(hook_calls(hooks, "on_disconnect")) == 2)
            assert await server.publish("t", Message(ReplyV1(message="nobody"))) == []

    run(main())


def test_client_broadcast_of_kind_unknown_to_server_is_reported() -> None:
    async def main() -> None:
        errors = Inbox()
        server, _hooks = fanout_server(on_error=errors)  # BadReplyV1 is unknown to it
        async with running(server), clients(server, 2) as cs:
            (a, box_a), (_b, box_b) = cs
            await a.broadcast(Message(BadReplyV1(message="undecodable")))
            err = await errors.wait_for(lambda e: isinstance(e, UnknownKind))
            assert err.kind == "goomerang.example.BadReplyV1"
            await barrier(server, [box_a, box_b], via=a)
            assert texts(box_a) == [] and texts(box_b) == []
            assert server.connections() == 2

    run(main())


@pytest.mark.pure_python  # replaces an engine method or global: see tests/conftest.py
def test_fanouts_from_one_read_reach_each_target_in_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Broadcast commands that arrive in one read are written once per target, in order."""

    async def main() -> None:
        server, hooks = fanout_server()
        async with running(server), clients(server, 3) as cs:
            writes: dict[int, int] = {}
            reads: list[int] = []

            class Counting:
                """The real transport, with its writes counted."""

                def __init__(self, inner: Any, conn_id: int) -> None:
                    self._inner, self._id = inner, conn_id

                def write(self, data: bytes) -> None:
                    writes[self._id] = writes.get(self._id, 0) + 1
                    self._inner.write(data)

                def __getattr__(self, name: str) -> Any:
                    return getattr(self._inner, name)

            receivers = {proto.conn_id for proto in server._conns}
            for proto in list(server._conns):
                proto.transport = Counting(proto.transport, proto.conn_id)  # type: ignore[assignment]
            peer = await RawPeer.connect(server.addr)
            try:
                (sender,) = [p for p in server._conns if p.conn_id not in receivers]
                receive = ServerConnection.receive_data

                def counted_read(self: ServerConnection, data: Any, now: Any = None) -> None:
                    if self is sender.engine:
                        reads.append(len(data))
                    receive(self, data, now)

                # on the class: engine connections have __slots__, no per-instance methods
                monkeypatch.setattr(ServerConnection, "receive_data", counted_read)
                frames = b"".join(
                    build_frame(OP_BINARY, pack_broadcast_cmd(msg(f"b{i}")), mask=True)
                    for i in range(3)
                )
                peer.send_raw(frames)
                for _client, box in cs:
                    got = await box.wait_count(3)
                    assert [m.payload.message for m in got] == ["b0", "b1", "b2"]
                assert len(hook_calls(hooks, "on_broadcast")) == 3
                # every read of the sender that carried broadcasts costs each target one write
                assert reads and sum(reads) == len(frames)
                assert set(writes) == receivers
                assert all(n == len(reads) for n in writes.values()), (writes, reads)
            finally:
                peer.abort()

    run(main())
