"""End to end over real sockets: send, send_sync, middlewares, headers, scheduling, errors."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from util import (
    WAIT,
    Inbox,
    connected,
    echo,
    msg,
    new_client,
    new_server,
    poll_until,
    recorder_handler,
    reply,
    run,
    running,
)

from goomerang_io import Client, RemoteError, Server
from goomerang_proto import (
    ConnectionLost,
    HandlerError,
    Message,
    NotRunning,
    Status,
    SyncTimeout,
    UnexpectedReply,
    UnexpectedText,
    UnknownKind,
)
from goomerang_proto.pb.goomerang_example_pb2 import BadReplyV1, MessageV1, ReplyV1


def echo_server(**kwargs: Any) -> Server:
    server = new_server(**kwargs)
    server.handle(MessageV1, echo)
    return server


def test_round_trip_plain_send_reaches_handlers_on_both_sides() -> None:
    async def main() -> None:
        server = echo_server()
        got = Inbox()
        async with running(server):
            client = new_client(server)
            client.handle(ReplyV1, recorder_handler(got))
            async with connected(client):
                size = await client.send(msg("hello", {"k": "v", "trace": "1"}))
                assert size == MessageV1(message="hello").ByteSize()
                (m,) = await got.wait_count(1)
        assert m.kind == "goomerang.example.ReplyV1"
        assert m.payload == ReplyV1(message="hello")
        assert m.headers == {"k": "v", "trace": "1"}
        assert not m.is_sync and m.uuid == ""
        assert m.creation is not None
        assert m.payload_size == ReplyV1(message="hello").ByteSize()

    run(main())


def test_server_handler_sees_client_headers_and_metadata() -> None:
    async def main() -> None:
        server = new_server()
        seen = Inbox()
        server.handle(MessageV1, recorder_handler(seen))
        async with running(server):
            client = new_client(server)
            async with connected(client):
                await client.send(msg("x", {"Key": "Value", "empty": ""}))
                (m,) = await seen.wait_count(1)
        assert m.headers == {"Key": "Value", "empty": ""}
        assert m.payload == MessageV1(message="x")
        assert m.creation is not None and not m.is_sync

    run(main())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(max_size=200),
    headers=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=5),
)
def test_sync_round_trip_preserves_any_text_and_headers(text: str, headers: dict[str, str]) -> None:
    async def main() -> Message[Any]:
        server = echo_server()
        async with running(server):
            client = new_client(server)
            client.register_message(ReplyV1)
            async with connected(client):
                return await client.send_sync(msg(text, headers), timeout=WAIT)

    got = run(main())
    assert got.payload == ReplyV1(message=text)
    assert got.headers == headers
    assert got.is_sync


def test_middleware_order_on_both_sides() -> None:
    trace: list[str] = []

    def tracer(name: str) -> Any:
        def middleware(next_handler: Any) -> Any:
            async def handler(sender: Any, message: Message[Any]) -> None:
                trace.append(f"{name}>")
                result = next_handler(sender, message)
                if asyncio.iscoroutine(result):
                    await result
                trace.append(f"<{name}")

            return handler

        return middleware

    async def main() -> None:
        done = Inbox()
        server = new_server()
        server.middleware(tracer("s1"))
        server.middleware(tracer("s2"))

        async def server_handler(sender: Any, message: Message[Any]) -> None:
            trace.append("server")
            await sender.send(reply(message.payload.message))

        server.handle(MessageV1, server_handler)
        async with running(server):
            client = new_client(server)
            client.middleware(tracer("c1"))
            client.middleware(tracer("c2"))

            def client_handler(_sender: Any, message: Message[Any]) -> None:
                trace.append("client")
                done.put(message)

            client.handle(ReplyV1, client_handler)
            async with connected(client):
                await client.send(msg("m"))
                await done.wait_count(1)
                # the client chain unwinds right after its handler returns
                await client.send_sync(msg("barrier"), timeout=WAIT)

    run(main())
    assert trace[:10] == [
        "s1>", "s2>", "server", "<s2", "<s1",
        "c1>", "c2>", "client", "<c2", "<c1",
    ]  # fmt: skip


def test_send_sync_single_request_gets_its_reply() -> None:
    async def main() -> Message[Any]:
        server = echo_server()
        async with running(server):
            client = new_client(server)
            client.register_message(ReplyV1)
            async with connected(client):
                got = await client.send_sync(msg("one", {"id": "1"}), timeout=WAIT)
                assert len(client._pending) == 0
                return got

    got = run(main())
    assert got.payload == ReplyV1(message="one")
    assert got.headers == {"id": "1"}
    assert got.is_sync and len(got.uuid) == 36


def test_send_sync_200_concurrent_requests_each_reply_to_its_caller() -> None:
    async def main() -> None:
        server = new_server(max_concurrency=50)

        async def shuffled_echo(sender: Any, message: Message[Any]) -> None:
            # workload, not synchronisation: a random small delay so replies
            # leave the server in a different order than the requests came in
            await asyncio.sleep(random.random() * 0.005)
            await sender.send(reply(message.payload.message, message.headers))

        server.handle(MessageV1, shuffled_echo)
        async with running(server):
            client = new_client(server)
            client.register_message(ReplyV1)
            async with connected(client):
                replies = await asyncio.gather(
                    *(
                        client.send_sync(msg(f"req-{i}", {"i": str(i)}), timeout=WAIT)
                        for i in range(200)
                    )
                )
                assert len(client._pending) == 0
        for i, got in enumerate(replies):
            assert got.payload == ReplyV1(message=f"req-{i}")
            assert got.headers == {"i": str(i)}
        assert len({r.uuid for r in replies}) == 200

    run(main())


def test_send_sync_timeout_leaves_no_leak_and_late_reply_is_reported_not_delivered() -> None:
    async def main() -> None:
        server = new_server()
        gate = asyncio.Event()
        entered = Inbox()

        async def held_reply(sender: Any, message: Message[Any]) -> None:
            entered.put(message)
            if message.payload.message == "slow":
                await gate.wait()  # held until the caller gave up
            await sender.send(reply(message.payload.message))

        server.handle(MessageV1, held_reply)
        async with running(server):
            errors = Inbox()
            delivered = Inbox()
            client = new_client(server, on_error=errors)
            client.handle(ReplyV1, recorder_handler(delivered))
            async with connected(client):
                with pytest.raises(SyncTimeout):
                    await client.send_sync(msg("slow"), timeout=0.2)
                assert len(client._pending) == 0
                await entered.wait_count(1)
                gate.set()
                late = await errors.wait_for(lambda e: isinstance(e, UnexpectedReply))
                assert "slow" not in str(delivered.items)
                # the connection still works, and the late reply never reached a handler
                ok = await client.send_sync(msg("fast"), timeout=WAIT)
                assert ok.payload == ReplyV1(message="fast")
                assert len(client._pending) == 0
        assert delivered.items == []
        assert "goomerang.example.ReplyV1" in str(late)

    run(main())


def test_server_handler_that_raises_is_reported_and_connection_lives_on() -> None:
    async def main() -> None:
        errors = Inbox()
        server = new_server(on_error=errors)

        def plain(sender: Any, message: Message[Any]) -> Any:
            if message.payload.message == "boom":
                raise ValueError("plain handler failed")
            return echo(sender, message)

        async def coro(sender: Any, message: Message[Any]) -> None:
            raise KeyError("async handler failed")

        server.handle(MessageV1, plain)
        server.handle(BadReplyV1, coro)
        async with running(server):
            client = new_client(server)
            client.register_message(ReplyV1)
            async with connected(client):
                await client.send(msg("boom"))
                first = await errors.wait_for(lambda e: isinstance(e, HandlerError))
                await client.send(Message(BadReplyV1(message="x")))
                await errors.wait_count(2)
                got = await client.send_sync(msg("still here"), timeout=WAIT)
                assert got.payload == ReplyV1(message="still here")
                assert client.status is Status.RUNNING
        assert isinstance(first.__cause__, ValueError)
        second = errors.items[1]
        assert isinstance(second, HandlerError) and isinstance(second.__cause__, KeyError)
        assert "goomerang.example.BadReplyV1" in str(second)

    run(main())


def test_client_handler_that_raises_is_reported_on_the_client() -> None:
    async def main() -> None:
        server = echo_server()
        async with running(server):
            errors = Inbox()
            client = new_client(server, on_error=errors)

            def bad(_sender: Any, _message: Message[Any]) -> None:
                raise RuntimeError("client handler failed")

            client.handle(ReplyV1, bad)
            async with connected(client):
                await client.send(msg("a"))
                err = await errors.wait_for(lambda e: isinstance(e, HandlerError))
                assert isinstance(err.__cause__, RuntimeError)
                assert client.status is Status.RUNNING
                got = await client.send_sync(msg("b"), timeout=WAIT)
                assert got.payload == ReplyV1(message="b")

    run(main())


def test_max_concurrency_1_keeps_arrival_order_with_async_handlers() -> None:
    async def main() -> None:
        server = new_server(max_concurrency=1)
        order = Inbox()
        running_now = 0
        peak = 0

        async def slow_varied(_sender: Any, message: Message[Any]) -> None:
            nonlocal running_now, peak
            running_now += 1
            peak = max(peak, running_now)
            # workload, not synchronisation: different delays would reorder the
            # completions if handlers overlapped
            await asyncio.sleep(random.random() * 0.004)
            order.put(message.payload.message)
            running_now -= 1

        server.handle(MessageV1, slow_varied)
        async with running(server):
            client = new_client(server)
            async with connected(client):
                for i in range(30):
                    await client.send(msg(str(i)))
                await order.wait_count(30)
        assert order.items == [str(i) for i in range(30)]
        assert peak == 1

    run(main())


def test_max_concurrency_above_1_overlaps_async_handlers() -> None:
    async def main() -> None:
        width = 4
        server = new_server(max_concurrency=width)
        inside = 0
        peak = 0
        all_in = asyncio.Event()
        finished = Inbox()

        async def rendezvous(_sender: Any, message: Message[Any]) -> None:
            nonlocal inside, peak
            inside += 1
            peak = max(peak, inside)
            if inside == width:
                all_in.set()
            # only returns once `width` handlers are inside at the same time:
            # with no overlap this would time out
            await asyncio.wait_for(all_in.wait(), WAIT)
            inside -= 1
            finished.put(message.payload.message)

        server.handle(MessageV1, rendezvous)
        async with running(server):
            client = new_client(server)
            async with connected(client):
                for i in range(width * 2):
                    await client.send(msg(str(i)))
                await finished.wait_count(width * 2)
        assert peak == width
        assert sorted(finished.items, key=int) == [str(i) for i in range(width * 2)]

    run(main())


def test_client_max_concurrency_1_keeps_order_of_server_messages() -> None:
    async def main() -> None:
        server = new_server()

        async def burst(sender: Any, message: Message[Any]) -> None:
            for i in range(20):
                await sender.send(reply(str(i)))

        server.handle(MessageV1, burst)
        order = Inbox()

        async def slow_varied(_sender: Any, message: Message[Any]) -> None:
            # workload, not synchronisation (see the server-side test)
            await asyncio.sleep(random.random() * 0.004)
            order.put(message.payload.message)

        async with running(server):
            client = new_client(server, max_concurrency=1)
            client.handle(ReplyV1, slow_varied)
            async with connected(client):
                await client.send(msg("go"))
                await order.wait_count(20)
        assert order.items == [str(i) for i in range(20)]

    run(main())


def test_unknown_kind_from_client_is_reported_and_connection_stays_up() -> None:
    async def main() -> None:
        errors = Inbox()
        server = echo_server(on_error=errors)
        async with running(server):
            client = new_client(server)
            client.register_message(BadReplyV1)  # known to the client only
            client.register_message(ReplyV1)
            async with connected(client):
                await client.send(Message(BadReplyV1(message="?")))
                err = await errors.wait_for(lambda e: isinstance(e, UnknownKind))
                assert err.kind == "goomerang.example.BadReplyV1"
                got = await client.send_sync(msg("after"), timeout=WAIT)
                assert got.payload == ReplyV1(message="after")
                assert client.status is Status.RUNNING
                assert server.connections() == 1

    run(main())


def test_text_frame_is_reported_and_connection_stays_up() -> None:
    async def main() -> None:
        errors = Inbox()
        server = echo_server(on_error=errors)
        async with running(server):
            client = new_client(server)
            client.register_message(ReplyV1)
            async with connected(client):
                assert client._engine is not None
                client._engine.send_raw(1, b"x")
                client._flush()
                await errors.wait_for(lambda e: isinstance(e, UnexpectedText))
                got = await client.send_sync(msg("after text"), timeout=WAIT)
                assert got.payload == ReplyV1(message="after text")
                assert server.connections() == 1

    run(main())


def _abort_server_transports(server: Server) -> None:
    """Make the server vanish without a close handshake (like a killed process)."""
    for proto in list(server._tcp):
        assert proto.transport is not None
        proto.transport.abort()


def test_server_vanishing_closes_client_fails_pending_sync_and_sends_fast() -> None:
    async def main() -> None:
        server = new_server()
        entered = Inbox()
        never = asyncio.Event()

        async def never_replies(_sender: Any, message: Message[Any]) -> None:
            entered.put(message)
            await never.wait()

        server.handle(MessageV1, never_replies)
        async with running(server):
            statuses = Inbox()
            errors = Inbox()
            client = new_client(server, on_status_change=statuses, on_error=errors)
            client.register_message(ReplyV1)
            await asyncio.wait_for(client.connect(), WAIT)
            pending = asyncio.ensure_future(client.send_sync(msg("stuck"), timeout=30))
            await entered.wait_count(1)
            _abort_server_transports(server)
            with pytest.raises(ConnectionLost):
                await asyncio.wait_for(pending, WAIT)
            await statuses.wait_for(lambda s: s is Status.CLOSED)
            assert client.status is Status.CLOSED
            assert len(client._pending) == 0
            with pytest.raises(NotRunning):
                await client.send(msg("late"))
            with pytest.raises(NotRunning):
                await client.send_sync(msg("late"))
            assert any(isinstance(e, ConnectionLost) for e in errors.items)
            never.set()

    run(main())


def test_client_can_be_used_from_a_server_handler_sender_both_ways() -> None:
    """A client handler replies through its sender; the server handler receives it."""

    async def main() -> None:
        server = new_server()
        got = Inbox()

        def server_handler(sender: Any, message: Message[Any]) -> Any:
            if message.payload.message == "ping":
                return sender.send(reply("pong"))
            got.put(message)
            return None

        server.handle(MessageV1, server_handler)
        async with running(server):
            client = new_client(server)

            def client_handler(sender: Any, message: Message[Any]) -> Any:
                return sender.send(msg("thanks for " + message.payload.message))

            client.handle(ReplyV1, client_handler)
            async with connected(client):
                await client.send(msg("ping"))
                (m,) = await got.wait_count(1)
        assert m.payload == MessageV1(message="thanks for pong")

    run(main())


def test_client_with_no_server_fails_fast() -> None:
    async def main() -> None:
        server = new_server()
        await server.start()
        addr = server.addr
        await server.shutdown()
        client = Client(addr, heartbeat_interval=None)
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(client.connect(), WAIT)
        with pytest.raises(NotRunning):
            await client.send(msg())

    run(main())


def test_server_pauses_reading_above_max_queue_and_resumes_when_handlers_catch_up() -> None:
    async def main() -> None:
        server = new_server(max_concurrency=1, max_queue=4)
        gate = asyncio.Event()
        order = Inbox()

        async def gated(_sender: Any, message: Message[Any]) -> None:
            if message.payload.message == "0":
                await gate.wait()  # held so that the queue fills up
            order.put(message.payload.message)

        server.handle(MessageV1, gated)
        async with running(server):
            client = new_client(server)
            async with connected(client):
                for i in range(40):
                    await client.send(msg(str(i)))
                await poll_until(lambda: any(p._reading_paused for p in server._conns))
                # these stay unread in the socket until the server resumes reading
                for i in range(40, 100):
                    await client.send(msg(str(i)))
                gate.set()
                await order.wait_count(100)
        assert order.items == [str(i) for i in range(100)]

    run(main())


READ_SIZE_BOUND = 256 * 1024  # the most one transport read hands to the connection


def test_server_pauses_reading_above_max_queue_bytes_and_loses_nothing() -> None:
    """Issue 11: the handler backlog is bounded in bytes, not only in messages."""

    async def main() -> None:
        limit = 64 * 1024
        server = new_server(max_concurrency=1, max_queue=10_000, max_queue_bytes=limit)
        gate = asyncio.Event()
        order = Inbox()
        big = "x" * 16_000

        async def gated(_sender: Any, message: Message[Any]) -> None:
            if message.payload.message.startswith("0:"):
                await gate.wait()  # held so that the backlog fills up
            order.put(message.payload.message.split(":")[0])

        server.handle(MessageV1, gated)
        async with running(server):
            client = new_client(server)
            async with connected(client):
                for i in range(40):  # 640 KB: ten times the limit
                    await client.send(msg(f"{i}:{big}"))
                await poll_until(lambda: any(p._reading_paused for p in server._conns))
                (conn,) = server._conns
                assert conn.runner.backlog_bytes() <= limit + READ_SIZE_BOUND
                assert conn.runner.backlog() < 40
                gate.set()
                await order.wait_count(40)
        assert order.items == [str(i) for i in range(40)]

    run(main())


def test_client_pauses_reading_above_max_queue_bytes_and_loses_nothing() -> None:
    """The client's mirror: a server that floods a client whose handlers are slow."""

    async def main() -> None:
        limit = 64 * 1024
        big = "x" * 16_000
        server = new_server()

        async def flood(sender: Any, message: Message[Any]) -> None:
            for i in range(40):
                await sender.send(reply(f"{i}:{big}"))

        server.handle(MessageV1, flood)
        async with running(server):
            gate = asyncio.Event()
            got = Inbox()

            async def gated(_sender: Any, message: Message[Any]) -> None:
                if message.payload.message.startswith("0:"):
                    await gate.wait()
                got.put(message.payload.message.split(":")[0])

            client = new_client(server, max_concurrency=1, max_queue_bytes=limit)
            client.handle(ReplyV1, gated)
            async with connected(client):
                await client.send(msg("flood"))
                proto = client._proto
                assert proto is not None
                await poll_until(lambda: proto._reading_paused)
                runner = client._runner
                assert runner is not None
                assert runner.backlog_bytes() <= limit + READ_SIZE_BOUND
                gate.set()
                await got.wait_count(40)
        assert got.items == [str(i) for i in range(40)]

    run(main())


def test_sends_above_the_write_limit_wait_for_drain_and_all_arrive() -> None:
    async def main() -> None:
        big = "x" * 16_384
        server = new_server(write_limit=8_192)
        received = Inbox()

        async def flood(sender: Any, message: Message[Any]) -> None:
            if message.payload.message == "flood":
                for i in range(150):
                    await sender.send(reply(f"{i}:{big}"))
            else:
                received.put(message.payload.message.split(":")[0])

        server.handle(MessageV1, flood)
        async with running(server):
            got = Inbox()
            client = new_client(server, write_limit=8_192)
            client.handle(ReplyV1, lambda _s, m: got.put(m.payload.message.split(":")[0]))
            async with connected(client):
                await client.send(msg("flood"))
                for i in range(150):
                    await client.send(msg(f"{i}:{big}"))
                await got.wait_count(150)
                await received.wait_count(150)
        assert got.items == [str(i) for i in range(150)]
        assert received.items == [str(i) for i in range(150)]

    run(main())


def test_message_over_max_message_size_closes_with_1009() -> None:
    async def main() -> None:
        errors = Inbox()
        disconnects = Inbox()
        server = echo_server(max_message_size=1024, on_error=errors, on_disconnect=disconnects)
        async with running(server):
            statuses = Inbox()
            client = new_client(server, on_status_change=statuses)
            await asyncio.wait_for(client.connect(), WAIT)
            await client.send(msg("x" * 2000))
            await statuses.wait_for(lambda s: s is Status.CLOSED)
            await disconnects.wait_count(1)
            assert client.close_code == 1009
            assert errors.items, "the server reports the oversized message"
            with pytest.raises(NotRunning):
                await client.send(msg())

    run(main())


def test_client_max_message_size_closes_with_1009() -> None:
    async def main() -> None:
        server = echo_server()
        async with running(server):
            statuses = Inbox()
            errors = Inbox()
            client = new_client(
                server, max_message_size=1024, on_status_change=statuses, on_error=errors
            )
            client.register_message(ReplyV1)
            await asyncio.wait_for(client.connect(), WAIT)
            # its own sends respect its limit (MessageTooLarge); a peer's broadcast does not
            async with connected(new_client(server)) as big:
                await big.broadcast(msg("y" * 2000))
                await statuses.wait_for(lambda s: s is Status.CLOSED)
            assert client.close_code == 1009

    run(main())


def test_unknown_kind_from_server_is_reported_on_the_client_and_connection_stays_up() -> None:
    async def main() -> None:
        server = new_server()

        async def answer_with_unknown(sender: Any, message: Message[Any]) -> None:
            if message.is_sync:
                await sender.send(reply("sync ok"))
            else:
                await sender.send(Message(BadReplyV1(message="client does not know me")))

        server.handle(MessageV1, answer_with_unknown)
        async with running(server):
            errors = Inbox()
            client = new_client(server, on_error=errors)
            client.register_message(ReplyV1)
            async with connected(client):
                await client.send(msg())
                err = await errors.wait_for(lambda e: isinstance(e, UnknownKind))
                assert err.kind == "goomerang.example.BadReplyV1"
                got = await client.send_sync(msg(), timeout=WAIT)
                assert got.payload == ReplyV1(message="sync ok")

    run(main())


def test_text_frame_from_server_is_reported_on_the_client() -> None:
    async def main() -> None:
        server = echo_server()
        async with running(server):
            errors = Inbox()
            client = new_client(server, on_error=errors)
            client.register_message(ReplyV1)
            async with connected(client):
                (proto,) = list(server._conns)
                proto.engine.send_raw(1, b"text from server")
                proto.flush()
                await errors.wait_for(lambda e: isinstance(e, UnexpectedText))
                got = await client.send_sync(msg("after"), timeout=WAIT)
                assert got.payload == ReplyV1(message="after")

    run(main())


def test_sync_request_without_a_server_handler_is_reported_and_fails_at_once() -> None:
    async def main() -> None:
        errors = Inbox()
        server = echo_server(on_error=errors)
        server.register_message(BadReplyV1)  # decodable, but no handler
        async with running(server):
            client = new_client(server)
            client.register_message(ReplyV1)
            async with connected(client):
                with pytest.raises(RemoteError) as info:  # an error reply, not the timeout
                    await client.send_sync(Message(BadReplyV1(message="?")), timeout=30.0)
                assert info.value.code == "no-handler"
                err = await errors.wait_count(1)
                assert "goomerang.example.BadReplyV1" in str(err[0])
                assert len(client._pending) == 0
                got = await client.send_sync(msg("next"), timeout=WAIT)
                assert got.payload == ReplyV1(message="next")

    run(main())


def test_large_message_round_trip() -> None:
    async def main() -> None:
        server = echo_server()
        async with running(server):
            client = new_client(server)
            client.register_message(ReplyV1)
            async with connected(client):
                text = "".join(chr(0x41 + i % 26) for i in range(1_000_000))
                got = await client.send_sync(msg(text, {"size": "1M"}), timeout=WAIT)
                assert got.payload.message == text
                assert got.headers == {"size": "1M"}

    run(main())


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_round_trip_over_ipv6_loopback() -> None:
    async def main() -> None:
        server = Server("[::1]:0")
        server.handle(MessageV1, echo)
        async with running(server):
            assert server.url == f"ws://[::1]:{server.port}/ws"
            client = Client(server.addr, heartbeat_interval=None)
            client.register_message(ReplyV1)
            async with connected(client):
                got = await client.send_sync(msg("v6"), timeout=WAIT)
                assert got.payload == ReplyV1(message="v6")
                assert client.peer is not None and client.peer[0] == "::1"

    run(main())


def test_fifty_clients_concurrently() -> None:
    async def main() -> None:
        server = echo_server()
        async with running(server):
            clients = [new_client(server) for _ in range(50)]
            for client in clients:
                client.register_message(ReplyV1)
            await asyncio.gather(*(asyncio.wait_for(c.connect(), WAIT) for c in clients))
            try:
                assert server.connections() == 50
                replies = await asyncio.gather(
                    *(c.send_sync(msg(f"c{i}"), timeout=WAIT) for i, c in enumerate(clients))
                )
                assert [r.payload.message for r in replies] == [f"c{i}" for i in range(50)]
            finally:
                await asyncio.gather(*(asyncio.wait_for(c.close(), WAIT) for c in clients))
            assert all(c.status is Status.CLOSED for c in clients)

    run(main())
