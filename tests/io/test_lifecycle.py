"""Lifecycle rules and errors of Server and Client, status hooks, graceful shutdown, hooks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from util import (
    WAIT,
    Inbox,
    connected,
    echo,
    msg,
    mute_client,
    mute_server,
    new_client,
    new_server,
    recorder_handler,
    run,
    running,
)

from goomerang_io import AuthRejected, Client, ClientOptions, Server, ServerOptions
from goomerang_io.loop import new_event_loop
from goomerang_proto import (
    AlreadyRunning,
    Closed,
    ConnectionLost,
    GoomerangError,
    HandshakeError,
    Message,
    NotRunning,
    Status,
    events,
)
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

R, CG, CD = Status.RUNNING, Status.CLOSING, Status.CLOSED


def test_client_send_before_connect_raises_not_running() -> None:
    async def main() -> None:
        client = new_client(new_server())
        with pytest.raises(NotRunning):
            await client.send(msg())
        with pytest.raises(NotRunning):
            await client.send_sync(msg())
        with pytest.raises(NotRunning):
            await client.broadcast(msg())
        with pytest.raises(NotRunning):
            await client.publish("t", msg())
        with pytest.raises(NotRunning):
            await client.subscribe("t")
        with pytest.raises(NotRunning):
            await client.close()
        assert client.status is Status.NEW

    run(main())


def test_client_send_after_close_raises_not_running() -> None:
    async def main() -> None:
        server = new_server()
        server.handle(MessageV1, echo)
        async with running(server):
            client = new_client(server)
            async with connected(client):
                await client.send(msg())
            assert client.status is Status.CLOSED
            with pytest.raises(NotRunning):
                await client.send(msg())
            with pytest.raises(NotRunning):
                await client.send_sync(msg())
            with pytest.raises(NotRunning):
                await client.close()

    run(main())


def test_server_shutdown_before_start_raises_not_running() -> None:
    async def main() -> None:
        server = new_server()
        with pytest.raises(NotRunning):
            await server.shutdown()
        assert server.status is Status.NEW
        with pytest.raises(NotRunning):
            await server.broadcast(msg())

    run(main())


def test_connect_twice_raises_already_running() -> None:
    async def main() -> None:
        server = new_server()
        async with running(server):
            client = new_client(server)
            async with connected(client):
                with pytest.raises(AlreadyRunning):
                    await client.connect()
                assert client.status is Status.RUNNING
                assert server.connections() == 1

    run(main())


def test_start_twice_raises_already_running() -> None:
    async def main() -> None:
        server = new_server()
        async with running(server):
            port = server.port
            with pytest.raises(AlreadyRunning):
                await server.start()
            assert server.status is Status.RUNNING and server.port == port

    run(main())


def test_start_after_shutdown_and_shutdown_twice_raise_closed() -> None:
    async def main() -> None:
        server = new_server()
        await server.start()
        await asyncio.wait_for(server.shutdown(), WAIT)
        with pytest.raises(Closed):
            await server.start()
        with pytest.raises(Closed):
            await server.shutdown()
        with pytest.raises(NotRunning):
            await server.broadcast(msg())
        assert server.status is Status.CLOSED

    run(main())


def test_status_transitions_are_observed_on_both_sides() -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        server_statuses = Inbox()
        client_statuses = Inbox()
        server = new_server(on_status_change=server_statuses)
        assert server.status is Status.NEW
        server.handle(MessageV1, echo)
        async with running(server):
            client = new_client(server, on_status_change=client_statuses)
            assert client.status is Status.NEW
            async with connected(client):
                assert client.status is Status.RUNNING
            assert client.status is Status.CLOSED
        assert server.status is Status.CLOSED
        return server_statuses.items, client_statuses.items

    server_seen, client_seen = run(main())
    assert server_seen == [R, CG, CD]
    assert client_seen == [R, CG, CD]


def test_client_resumes_after_close() -> None:
    async def main() -> None:
        server = new_server()
        server.handle(MessageV1, echo)
        statuses = Inbox()
        async with running(server):
            client = new_client(server, on_status_change=statuses)
            client.register_message(ReplyV1)
            for round_ in range(3):
                async with connected(client):
                    got = await client.send_sync(msg(f"round {round_}"), timeout=WAIT)
                    assert got.payload == ReplyV1(message=f"round {round_}")
                assert client.status is Status.CLOSED
        assert statuses.items == [R, CG, CD] * 3

    run(main())


def test_server_shutdown_closes_every_client_with_1000() -> None:
    async def main() -> None:
        server_statuses = Inbox()
        server = new_server(on_status_change=server_statuses)
        server.handle(MessageV1, echo)
        async with running(server):
            inboxes = [Inbox() for _ in range(3)]
            clients = [new_client(server, on_status_change=box) for box in inboxes]
            for client in clients:
                client.register_message(ReplyV1)
                await asyncio.wait_for(client.connect(), WAIT)
            for client in clients:  # every connection is up on the server side
                await client.send_sync(msg("up"), timeout=WAIT)
            assert server.connections() == 3
            await asyncio.wait_for(server.shutdown(), WAIT)
            for box in inboxes:
                await box.wait_for(lambda s: s is Status.CLOSED)
        for client in clients:
            assert client.status is Status.CLOSED
            assert client.close_code == 1000
            with pytest.raises(NotRunning):
                await client.send(msg())
        assert server_statuses.items == [R, CG, CD]
        assert server.connections() == 0

    run(main())


def test_handler_cannot_send_after_shutdown() -> None:
    async def main() -> None:
        server = new_server()
        senders = Inbox()

        def keep_sender(sender: Any, message: Message[Any]) -> None:
            senders.put(sender)

        server.handle(MessageV1, keep_sender)
        async with running(server):
            client = new_client(server)
            await asyncio.wait_for(client.connect(), WAIT)
            await client.send(msg())
            (sender,) = await senders.wait_count(1)
            await asyncio.wait_for(server.shutdown(), WAIT)
        with pytest.raises(NotRunning):
            await sender.send(reply_msg())

    run(main())


def reply_msg() -> Message[ReplyV1]:
    return Message(ReplyV1(message="too late"))


def test_running_handler_finishes_before_shutdown_completes() -> None:
    async def main() -> None:
        trace: list[str] = []
        entered = Inbox()
        release = asyncio.Event()

        def status_hook(status: Status) -> None:
            trace.append(status.name)

        server_statuses = Inbox()
        server = new_server(on_status_change=[status_hook, server_statuses])

        async def long_handler(_sender: Any, message: Message[Any]) -> None:
            entered.put(message)
            await release.wait()  # held until shutdown is under way
            trace.append("handler done")

        server.handle(MessageV1, long_handler)
        await server.start()
        client_statuses = Inbox()
        client = new_client(server, on_status_change=client_statuses)
        await asyncio.wait_for(client.connect(), WAIT)
        await client.send(msg())
        await entered.wait_count(1)
        shutdown = asyncio.ensure_future(server.shutdown())
        await server_statuses.wait_for(lambda s: s is Status.CLOSING)
        # the connection stays open while the handler runs (its sends must go out)
        assert not shutdown.done()
        assert client.status is Status.RUNNING
        release.set()
        await asyncio.wait_for(shutdown, WAIT)
        await client_statuses.wait_for(lambda s: s is Status.CLOSED)
        assert trace == ["RUNNING", "CLOSING", "handler done", "CLOSED"]

    run(main())


def test_server_hooks_configuration_close_and_error() -> None:
    async def main() -> None:
        configs = Inbox()
        closes = Inbox()
        errors = Inbox()
        server = new_server(max_concurrency=3, on_configuration=configs, on_error=errors)
        server.on_close(lambda: closes.put("closed"))
        server.handle(MessageV1, echo)
        await server.start()
        assert len(configs.items) == 1
        (options,) = configs.items
        assert isinstance(options, ServerOptions) and options.max_concurrency == 3
        assert closes.items == []
        await asyncio.wait_for(server.shutdown(), WAIT)
        assert closes.items == ["closed"]
        assert errors.items == []

    run(main())


def test_client_hooks_configuration_close_and_status() -> None:
    async def main() -> None:
        configs = Inbox()
        closes = Inbox()
        statuses = Inbox()
        server = new_server()
        async with running(server):
            client = new_client(
                server, max_concurrency=2, on_configuration=configs, on_status_change=statuses
            )
            client.add_hook("on_close", lambda: closes.put("closed"))
            async with connected(client):
                (options,) = configs.items
                assert isinstance(options, ClientOptions) and options.max_concurrency == 2
                assert closes.items == []
        assert closes.items == ["closed"]
        assert statuses.items == [R, CG, CD]

    run(main())


def test_hook_that_raises_is_reported_and_breaks_nothing() -> None:
    async def main() -> None:
        server_errors = Inbox()
        client_errors = Inbox()

        def bad_hook(*_args: Any) -> None:
            raise RuntimeError("hook failed")

        server = new_server(on_status_change=bad_hook, on_error=server_errors)
        server.add_hook("on_configuration", bad_hook)
        server.add_hook("on_subscribe", bad_hook)
        server.handle(MessageV1, echo)
        async with running(server):
            assert server.status is Status.RUNNING
            client = new_client(server, on_status_change=bad_hook, on_error=client_errors)
            client.add_hook("on_configuration", bad_hook)
            client.register_message(ReplyV1)
            async with connected(client):
                assert client.status is Status.RUNNING
                await client.subscribe("t")
                got = await client.send_sync(msg("works"), timeout=WAIT)
                assert got.payload == ReplyV1(message="works")
            assert client.status is Status.CLOSED
        assert server.status is Status.CLOSED
        # server: configuration, RUNNING, subscribe, CLOSING, CLOSED
        assert len(server_errors.items) == 5
        # client: configuration, RUNNING, CLOSING, CLOSED
        assert len(client_errors.items) == 4
        for err in server_errors.items + client_errors.items:
            assert isinstance(err, RuntimeError) and str(err) == "hook failed"

    run(main())


def test_on_error_hook_that_raises_does_not_break_anything() -> None:
    async def main() -> None:
        def bad_error_hook(_exc: BaseException) -> None:
            raise RuntimeError("error hook failed")

        later = Inbox()
        server = new_server(on_error=[bad_error_hook, later])
        server.handle(MessageV1, lambda _s, _m: 1 / 0)
        async with running(server):
            client = new_client(server)
            async with connected(client):
                await client.send(msg())
                err = await later.wait_count(1)
                assert isinstance(err[0], GoomerangError)
                assert server.connections() == 1

    run(main())


def test_async_hooks_are_run() -> None:
    async def main() -> None:
        statuses = Inbox()

        async def async_hook(status: Status) -> None:
            statuses.put(status)

        server = new_server(on_status_change=async_hook)
        async with running(server):
            await statuses.wait_for(lambda s: s is Status.RUNNING)
        await statuses.wait_for(lambda s: s is Status.CLOSED)
        assert statuses.items == [R, CG, CD]

    run(main())


def test_pending_sync_fails_with_connection_lost_when_the_client_closes() -> None:
    async def main() -> None:
        server = new_server(shutdown_timeout=0.5)
        entered = Inbox()
        never = asyncio.Event()

        async def never_replies(_sender: Any, message: Message[Any]) -> None:
            entered.put(message)
            await never.wait()  # a handler that never answers

        server.handle(MessageV1, never_replies)
        async with running(server):
            client = new_client(server)
            await asyncio.wait_for(client.connect(), WAIT)
            pending = asyncio.ensure_future(client.send_sync(msg("stuck"), timeout=30))
            await entered.wait_count(1)
            await asyncio.wait_for(client.close(), WAIT)
            with pytest.raises(ConnectionLost):
                await asyncio.wait_for(pending, WAIT)
            assert len(client._pending) == 0
            never.set()

    run(main())


def test_pending_sync_fails_with_connection_lost_when_the_server_shuts_down() -> None:
    async def main() -> None:
        server = new_server(shutdown_timeout=0.5)
        entered = Inbox()
        never = asyncio.Event()

        async def never_replies(_sender: Any, message: Message[Any]) -> None:
            entered.put(message)
            await never.wait()  # a handler that never answers

        server.handle(MessageV1, never_replies)
        await server.start()
        client = new_client(server)
        await asyncio.wait_for(client.connect(), WAIT)
        pending = asyncio.ensure_future(client.send_sync(msg("stuck"), timeout=30))
        await entered.wait_count(1)
        shutdown = asyncio.ensure_future(server.shutdown())
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(pending, WAIT)
        await asyncio.wait_for(shutdown, WAIT)
        assert client.status is Status.CLOSED and client.close_code == 1000
        never.set()

    run(main())


def test_client_close_waits_for_its_running_handler() -> None:
    async def main() -> None:
        server = new_server()
        server.handle(MessageV1, echo)
        trace: list[str] = []
        entered = Inbox()
        release = asyncio.Event()

        async def long_handler(_sender: Any, message: Message[Any]) -> None:
            entered.put(message)
            await release.wait()  # held until close() is under way
            trace.append("handler done")

        statuses = Inbox()

        def status_hook(status: Status) -> None:
            trace.append(status.name)
            statuses.put(status)

        async with running(server):
            client = new_client(server, on_status_change=status_hook, close_timeout=2.0)
            client.handle(ReplyV1, long_handler)
            await asyncio.wait_for(client.connect(), WAIT)
            await client.send(msg())
            await entered.wait_count(1)
            closing = asyncio.ensure_future(client.close())
            await statuses.wait_for(lambda s: s is Status.CLOSING)
            release.set()
            await asyncio.wait_for(closing, WAIT)
        assert trace == ["RUNNING", "CLOSING", "handler done", "CLOSED"]

    run(main())


def test_server_handler_can_close_its_client() -> None:
    async def main() -> None:
        disconnects = Inbox()
        server = new_server(on_disconnect=disconnects)

        def closer(sender: Any, _message: Message[Any]) -> None:
            sender.close(1000)

        server.handle(MessageV1, closer)
        async with running(server):
            statuses = Inbox()
            client = new_client(server, on_status_change=statuses)
            await asyncio.wait_for(client.connect(), WAIT)
            await client.send(msg("close me"))
            await statuses.wait_for(lambda s: s is Status.CLOSED)
            await disconnects.wait_count(1)
            assert client.close_code == 1000
            assert server.connections() == 0
            assert server.status is Status.RUNNING

    run(main())


def test_context_managers_start_and_stop_both_ends() -> None:
    async def main() -> None:
        server = new_server()
        server.handle(MessageV1, echo)
        async with server:
            assert server.status is Status.RUNNING
            client = new_client(server)
            client.register_message(ReplyV1)
            async with client:
                got = await client.send_sync(msg("cm"), timeout=WAIT)
                assert got.payload == ReplyV1(message="cm")
            assert client.status is Status.CLOSED
        assert server.status is Status.CLOSED

    run(main())


def test_shutdown_does_not_wait_for_silent_or_half_open_tcp_peers() -> None:
    async def main() -> None:
        server = new_server()
        async with running(server):
            silent_reader, silent = await asyncio.open_connection(server.host, server.port)
            half_reader, half = await asyncio.open_connection(server.host, server.port)
            half.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # never finished
            await half.drain()
            client = new_client(server)
            await asyncio.wait_for(client.connect(), WAIT)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await asyncio.wait_for(server.shutdown(), WAIT)
            assert loop.time() - t0 < 2.0
            assert await asyncio.wait_for(silent_reader.read(), WAIT) == b""
            assert await asyncio.wait_for(half_reader.read(), WAIT) == b""
            silent.close()
            half.close()

    run(main())


def test_silent_tcp_peer_is_dropped_after_the_handshake_timeout() -> None:
    async def main() -> None:
        errors = Inbox()
        server = new_server(handshake_timeout=0.3, on_error=errors)
        async with running(server):
            reader, writer = await asyncio.open_connection(server.host, server.port)
            assert await asyncio.wait_for(reader.read(), WAIT) == b""
            writer.close()
            await errors.wait_count(1)
            assert "handshake" in str(errors.items[0])

    run(main())


def test_server_drops_a_client_that_does_not_answer_pings() -> None:
    async def main() -> None:
        errors = Inbox()
        disconnects = Inbox()
        server = new_server(
            ping_interval=0.1, ping_timeout=0.2, on_error=errors, on_disconnect=disconnects
        )
        async with running(server):
            peer = await mute_client(server)
            try:
                await asyncio.wait_for(peer.eof.wait(), WAIT)
                await disconnects.wait_count(1)
                assert any("did not answer pings" in str(e) for e in errors.items)
                assert server.connections() == 0
            finally:
                peer.close()

    run(main())


def test_server_keeps_a_client_that_answers_pings() -> None:
    async def main() -> None:
        server = new_server(ping_interval=0.05, ping_timeout=0.1)
        server.handle(MessageV1, echo)
        async with running(server):
            client = new_client(server)
            client.register_message(ReplyV1)
            pongs = Inbox()
            async with connected(client):
                # count the pings the client engine answers (its events pass by _on_event)
                on_event = client._on_event

                def spy(proto: Any, event: Any) -> None:
                    if isinstance(event, events.PingReceived):
                        pongs.put(event)
                    on_event(proto, event)

                client._on_event = spy  # type: ignore[method-assign]
                await pongs.wait_count(5)  # five ping intervals, each well past ping_timeout/2
                got = await client.send_sync(msg("still up"), timeout=WAIT)
                assert got.payload == ReplyV1(message="still up")
                assert server.connections() == 1

    run(main())


def test_client_drops_a_server_that_does_not_answer_pings() -> None:
    async def main() -> None:
        async with mute_server() as (addr, _peers):
            errors = Inbox()
            statuses = Inbox()
            client = Client(
                addr,
                heartbeat_interval=0.1,
                ping_timeout=0.2,
                on_error=errors,
                on_status_change=statuses,
            )
            await asyncio.wait_for(client.connect(), WAIT)
            await statuses.wait_for(lambda s: s is Status.CLOSED)
            # reported once, with its reason (not again as "lost (code 1006)")
            assert [str(e) for e in errors.items] == ["did not answer pings: no pong within 0.2 s"]
            with pytest.raises(NotRunning):
                await client.send(msg())

    run(main())


def test_client_close_gives_up_waiting_for_a_mute_server_after_close_timeout() -> None:
    async def main() -> None:
        async with mute_server() as (addr, peers):
            client = Client(addr, heartbeat_interval=None, close_timeout=0.3)
            await asyncio.wait_for(client.connect(), WAIT)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await asyncio.wait_for(client.close(), WAIT)
            elapsed = loop.time() - t0
            assert client.status is Status.CLOSED
            assert 0.25 <= elapsed < 2.0
            await asyncio.wait_for(peers[0].eof.wait(), WAIT)

    run(main())


def test_server_shutdown_gives_up_waiting_for_a_mute_client_after_close_timeout() -> None:
    async def main() -> None:
        server = new_server(close_timeout=0.3)
        await server.start()
        peer = await mute_client(server)
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await asyncio.wait_for(server.shutdown(), WAIT)
            assert loop.time() - t0 < 2.0
            assert server.status is Status.CLOSED
            await asyncio.wait_for(peer.eof.wait(), WAIT)
        finally:
            peer.close()

    run(main())


def test_upgrade_over_max_connections_is_refused_with_503() -> None:
    async def main() -> None:
        errors = Inbox()
        server = new_server(max_connections=1, on_error=errors)
        async with running(server):
            first = new_client(server)
            async with connected(first):
                second = new_client(server)
                with pytest.raises(HandshakeError) as info:
                    await asyncio.wait_for(second.connect(), WAIT)
                assert info.value.status == 503
                assert second.status is Status.NEW
                assert server.connections() == 1
                await errors.wait_count(1)
            third = new_client(server)  # a slot is free again
            async with connected(third):
                assert server.connections() == 1

    run(main())


def test_origin_outside_the_allow_list_is_refused_with_403() -> None:
    async def main() -> None:
        server = new_server(allowed_origins=["https://good.example"])
        async with running(server):
            bad = new_client(server, headers=[("Origin", "https://evil.example")])
            with pytest.raises(HandshakeError) as info:
                await asyncio.wait_for(bad.connect(), WAIT)
            assert info.value.status == 403
            good = new_client(server, headers=[("Origin", "https://good.example")])
            async with connected(good):
                assert server.connections() == 1

    run(main())


def test_client_reconnects_and_resubscribes_after_the_server_comes_back() -> None:
    async def main() -> None:
        first = new_server()
        first.register_message(MessageV1)
        await first.start()
        port = first.port
        statuses = Inbox()
        attempts = Inbox()
        got = Inbox()
        client = new_client(
            first,
            reconnect=True,
            reconnect_initial=0.05,
            reconnect_max=0.2,
            on_status_change=statuses,
            on_reconnect_attempt=attempts,
        )
        client.handle(MessageV1, recorder_handler(got))
        await asyncio.wait_for(client.connect(), WAIT)
        await client.subscribe("news")
        await asyncio.wait_for(first.shutdown(), WAIT)
        await statuses.wait_for(lambda s: s is Status.CLOSED)

        subscribed = Inbox()
        second = Server(f"127.0.0.1:{port}", on_subscribe=subscribed)
        second.register_message(MessageV1)
        async with running(second):
            await statuses.wait_until(lambda items: items[-1:] == [Status.RUNNING])
            assert attempts.items and attempts.items[0][0] == 1
            await subscribed.wait_count(1)  # the subscription was restored
            await second.publish("news", msg("after reconnect"))
            (m,) = await got.wait_count(1)
            assert m.payload == MessageV1(message="after reconnect")
            await asyncio.wait_for(client.close(), WAIT)
        assert statuses.items == [R, CG, CD, R, CG, CD]  # Go: RUNNING -> CLOSING -> CLOSED

    run(main())


class ClientLifecycleMachine(RuleBasedStateMachine):
    """One client and one server on a persistent loop; every operation checked against a model.

    The model: the client is NEW, RUNNING or CLOSED; the server is up until
    the ``server_shutdown`` rule, after which connecting fails fast.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loop = new_event_loop()
        self.server = new_server()
        self.server.handle(MessageV1, echo)
        self.statuses = Inbox()
        self.loop.run_until_complete(self.server.start())
        self.client = new_client(self.server, on_status_change=self._status)
        self.client.register_message(ReplyV1)
        self.got = Inbox()
        self.client.handle(MessageV1, recorder_handler(self.got))
        self.model = Status.NEW
        self.server_up = True
        self.counter = 0

    def _status(self, status: Status) -> None:
        self.statuses.put(status)

    def do(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, WAIT))

    @rule()
    def connect(self) -> None:
        if self.model is Status.RUNNING:
            with pytest.raises(AlreadyRunning):
                self.do(self.client.connect())
        elif not self.server_up:
            with pytest.raises(ConnectionLost):
                self.do(self.client.connect())
        else:
            self.do(self.client.connect())
            self.model = Status.RUNNING

    @rule()
    def close(self) -> None:
        if self.model is Status.RUNNING:
            self.do(self.client.close())
            self.model = Status.CLOSED
        else:
            with pytest.raises(NotRunning):
                self.do(self.client.close())

    @rule(text=st.text(max_size=30))
    def send_sync(self, text: str) -> None:
        if self.model is Status.RUNNING:
            got = self.do(self.client.send_sync(msg(text), timeout=WAIT))
            assert got.payload == ReplyV1(message=text)
        else:
            with pytest.raises(NotRunning):
                self.do(self.client.send_sync(msg(text)))

    @rule()
    def broadcast(self) -> None:
        self.counter += 1
        text = f"b{self.counter}"
        if self.model is Status.RUNNING:
            self.do(self.client.broadcast(msg(text)))
            self.do(self.got.wait_for(lambda m: m.payload.message == text))
        else:
            with pytest.raises(NotRunning):
                self.do(self.client.broadcast(msg(text)))

    @rule()
    def server_shutdown(self) -> None:
        if not self.server_up:
            with pytest.raises(Closed):
                self.do(self.server.shutdown())
            return
        seen = len(self.statuses.items)
        self.do(self.server.shutdown())
        self.server_up = False
        if self.model is Status.RUNNING:
            self.do(
                self.statuses.wait_until(
                    lambda items: Status.CLOSED in items[seen:],
                )
            )
            self.model = Status.CLOSED

    @invariant()
    def status_matches_the_model(self) -> None:
        assert self.client.status is self.model
        assert len(self.client._pending) == 0

    def teardown(self) -> None:
        try:
            if self.client.status is Status.RUNNING:
                self.do(self.client.close())
            if self.server.status is Status.RUNNING:
                self.do(self.server.shutdown())
        finally:
            self.loop.close()


ClientLifecycleMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=15, deadline=None
)
test_client_lifecycle_machine = ClientLifecycleMachine.TestCase


def test_connect_times_out_against_a_server_that_never_answers_the_upgrade() -> None:
    async def main() -> None:
        accepted = Inbox()
        writers: list[asyncio.StreamWriter] = []

        async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            accepted.put(writer)

        tcp = await asyncio.start_server(silent, "127.0.0.1", 0)
        try:
            port = tcp.sockets[0].getsockname()[1]
            client = Client(f"127.0.0.1:{port}", handshake_timeout=0.3, heartbeat_interval=None)
            with pytest.raises(HandshakeError):
                await asyncio.wait_for(client.connect(), WAIT)
            assert client.status is Status.NEW
            await accepted.wait_count(1)
        finally:
            for writer in writers:
                writer.close()
            tcp.close()

    run(main())


def test_connect_again_after_a_refused_upgrade() -> None:
    async def main() -> None:
        attempts = 0

        def authenticate(_request: Any) -> str:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                raise AuthRejected(401, "try again")
            return "user"

        server = new_server(authenticate=authenticate)
        server.handle(MessageV1, echo)
        async with running(server):
            statuses = Inbox()
            client = new_client(server, on_status_change=statuses)
            client.register_message(ReplyV1)
            with pytest.raises(HandshakeError) as info:
                await asyncio.wait_for(client.connect(), WAIT)
            assert info.value.status == 401
            assert client.status is Status.NEW and statuses.items == []
            async with connected(client):
                got = await client.send_sync(msg("second try"), timeout=WAIT)
                assert got.payload == ReplyV1(message="second try")
        assert statuses.items == [R, CG, CD]

    run(main())


def test_a_sender_kept_past_shutdown_refuses_to_send() -> None:
    """A handler's sender used after the server closed raises NotRunning."""

    async def main() -> None:
        kept: list[Any] = []
        got = asyncio.Event()

        def keep(sender: Any, _message: Any) -> None:
            kept.append(sender)
            got.set()

        server = new_server()
        server.handle(MessageV1, keep)
        async with running(server):
            client = new_client(server)
            async with connected(client):
                await client.send(msg("keep my sender"))
                await asyncio.wait_for(got.wait(), WAIT)
        assert server.status is Status.CLOSED
        with pytest.raises(NotRunning, match="server is closed"):
            kept[0].send(Message(ReplyV1(message="too late")))

    run(main())
