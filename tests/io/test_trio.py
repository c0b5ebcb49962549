"""The trio runtime in-process: its own timers, errors and bounds (the features are in
test_runtimes.py and, against the Go peer, in tests/interop).

Raw peers are plain trio streams that speak only what a case needs. Every case
runs under ``trio.fail_after``; nothing waits on a sleep.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from goomerang_io.cli import echo_handler
from goomerang_io.options import ServerOptions
from goomerang_io.trio import Client, Server
from goomerang_io.trio.connection import Connection
from goomerang_proto import (
    AlreadyRunning,
    ConnectionLost,
    HandlerError,
    HandshakeError,
    Message,
    NotRunning,
    ServerConnection,
    Status,
    UnexpectedReply,
)
from goomerang_proto.codec import pack
from goomerang_proto.errors import RemoteError
from goomerang_proto.frames import OP_CLOSE, FrameReader, build_frame, parse_close_payload
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

LIMIT = 10.0  # bound of every case, in seconds


def run(case: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        with trio.fail_after(LIMIT):
            await case()

    trio.run(bounded)


def msg(text: str) -> Message[MessageV1]:
    return Message(MessageV1(message=text))


def echo_server(**options: Any) -> Server:
    server = Server("127.0.0.1:0", **options)
    server.handle(MessageV1, echo_handler)
    server.register_message(ReplyV1)
    return server


def client(addr: str, **options: Any) -> Client:
    c = Client(addr, heartbeat_interval=None, **options)
    c.register_message(MessageV1)
    return c


class RawPeer:
    """A WebSocket client on a bare trio stream: it upgrades, then sends what a case wants."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream, self.buf, self.frames = stream, b"", FrameReader(expect_masked=False)
        self.pending: list[tuple[int, bytes]] = []

    @classmethod
    async def connect(cls, addr: str, upgrade: bool = True) -> RawPeer:
        host, _, port = addr.rpartition(":")
        peer = cls(await trio.open_tcp_stream(host, int(port)))
        if upgrade:
            key = base64.b64encode(os.urandom(16)).decode()
            await peer.stream.send_all(
                f"GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade"
                f"\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            assert (await peer.head()).startswith(b"HTTP/1.1 101")
        return peer

    async def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            chunk = await self.stream.receive_some(65536)
            assert chunk, "closed before the response head"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    async def next_frame(self) -> tuple[int, bytes] | None:
        """The next frame from the server, None at EOF."""
        if self.buf:
            self.frames.feed(self.buf, self.pending)
            self.buf = b""
        while not self.pending:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.frames.feed(data, self.pending)
        return self.pending.pop(0)

    async def close_code(self) -> int | None:
        """Read until the server's Close frame; its code (None: EOF without one)."""
        while (frame := await self.next_frame()) is not None:
            if frame[0] == OP_CLOSE:
                return parse_close_payload(frame[1])[0]
        return None

    async def at_eof(self) -> bool:
        """True once the server closed the TCP connection (frames before it are skipped)."""
        try:
            while await self.stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
        return True


def test_handler_error_is_reported_and_the_connection_lives() -> None:
    async def case() -> None:
        errors: list[BaseException] = []
        server = Server("127.0.0.1:0", on_error=[errors.append])

        def boom(sender: Any, message: Message[Any]) -> None:
            if message.payload.message == "boom":
                raise ValueError("boom")
            sender.send(Message(message.payload, message.headers))

        server.handle(MessageV1, boom)
        async with server, client(server.addr) as c:
            # error replies negotiated (as on asyncio): the caller learns at once, no internals
            with pytest.raises(RemoteError, match=r"^the handler for \S+ failed$"):
                await c.send_sync(msg("boom"), timeout=LIMIT)
            assert (await c.send_sync(msg("fine"))).payload.message == "fine"
        assert [type(e) for e in errors] == [HandlerError]
        assert isinstance(errors[0].__cause__, ValueError)

    run(case)


def test_async_handlers_run_concurrently_up_to_max_concurrency() -> None:
    async def case() -> None:
        running, peak, release = 0, 0, trio.Event()

        async def slow(sender: Any, message: Message[Any]) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            if peak == 3:
                release.set()
            await release.wait()
            running -= 1
            await sender.send(Message(message.payload))

        server = Server("127.0.0.1:0", max_concurrency=3)
        server.handle(MessageV1, slow)
        async with server, client(server.addr) as c:
            async with trio.open_nursery() as nursery:
                for i in range(5):
                    nursery.start_soon(c.send_sync, msg(f"s{i}"))
        assert peak == 3

    run(case)


def test_connect_refused_is_connection_lost_and_send_before_connect_is_not_running() -> None:
    async def case() -> None:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        await listener.aclose()  # nothing listens there now
        refused = Client(f"127.0.0.1:{port}")
        with pytest.raises(NotRunning):
            await refused.send(msg("early"))
        with pytest.raises(ConnectionLost):
            async with refused:
                pass
        assert refused.status is Status.NEW

    run(case)


def test_client_handshake_timeout_against_a_silent_server() -> None:
    async def case() -> None:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        silent = Client(f"127.0.0.1:{port}", handshake_timeout=0.3)
        t0 = trio.current_time()
        with pytest.raises(HandshakeError):
            async with silent:
                pass
        assert trio.current_time() - t0 < 2.0
        await listener.aclose()

    run(case)


def test_server_drops_a_connection_that_never_sends_its_request() -> None:
    async def case() -> None:
        async with echo_server(handshake_timeout=0.3) as server:
            peer = await RawPeer.connect(server.addr, upgrade=False)
            t0 = trio.current_time()
            assert await peer.at_eof()
            assert trio.current_time() - t0 < 2.0

    run(case)


def test_other_paths_get_404() -> None:
    async def case() -> None:
        async with echo_server() as server:
            peer = await RawPeer.connect(server.addr, upgrade=False)
            await peer.stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await peer.head()).startswith(b"HTTP/1.1 404")

    run(case)


def test_malformed_frame_closes_that_connection_with_1002_only() -> None:
    async def case() -> None:
        errors: list[BaseException] = []
        async with echo_server(on_error=[errors.append]) as server:
            async with client(server.addr) as bystander:
                bad = await RawPeer.connect(server.addr)
                await bad.stream.send_all(build_frame(2, b"unmasked"))  # clients must mask
                assert await bad.close_code() == 1002
                assert await bad.at_eof()
                assert (await bystander.send_sync(msg("still here"))).payload.message == (
                    "still here"
                )
        assert errors, "the protocol error is reported"

    run(case)


def test_shutdown_is_bounded_when_a_client_never_answers_the_close() -> None:
    async def case() -> None:
        server = echo_server(close_timeout=0.3, shutdown_timeout=0.2)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            peer = await RawPeer.connect(server.addr)  # it never answers the Close
            t0 = trio.current_time()
            await server.shutdown()
            assert trio.current_time() - t0 < 2.0
            assert server.status is Status.CLOSED
            assert await peer.close_code() == 1000
            assert await peer.at_eof()

    run(case)


def test_a_fan_out_target_that_does_not_read_is_dropped_once_past_the_limit() -> None:
    """The engine's hard cap (slow_client_limit): the connection is failed (1008) and its
    transport aborted with what it held; the error is reported; the others go on."""

    async def case() -> None:
        errors: list[BaseException] = []
        changed = trio.Event()

        def count(_sender: Any) -> None:
            nonlocal changed
            changed.set()

        async def until_connections(n: int) -> None:
            nonlocal changed
            while server.connections() != n:
                changed = trio.Event()
                await changed.wait()

        limit = 256 * 1024
        server = echo_server(
            slow_client_limit=limit,
            slow_client_code=1008,
            on_error=[errors.append],
            on_connect=[count],
            on_disconnect=[count],
        )
        got = trio.Semaphore(0, max_value=10_000)
        async with server:
            reader = client(server.addr)
            reader.handle(MessageV1, lambda _sender, _message: got.release())
            async with reader:
                slow = await RawPeer.connect(server.addr)  # never reads
                await until_connections(2)
                big = msg("x" * 100_000)
                for _ in range(2000):  # at most 200 MB offered; the cap trips long before
                    results = await server.broadcast(big)
                    if not all(r.ok for r in results):
                        break
                    await got.acquire()  # the reading client keeps pace: only `slow` lags
                else:
                    raise AssertionError("the slow client was never dropped")
                assert await slow.at_eof()
                await until_connections(1)
                assert (await reader.send_sync(msg("alive"))).payload.message == "alive"
        assert [e for e in errors if f"more than {limit} bytes" in str(e)], errors

    run(case)


def test_a_fault_in_the_owner_ends_that_connection_only_and_is_reported() -> None:
    class Faulty:
        options = ServerOptions()
        errors: list[BaseException] = []

        def on_event(self, conn: Connection, event: Any) -> None:
            raise RuntimeError("owner bug")

        def report_error(self, exc: BaseException) -> None:
            self.errors.append(exc)

    async def case() -> None:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            peer_stream = await trio.open_tcp_stream("127.0.0.1", port)
            server_stream = await listener.accept()
            owner = Faulty()
            conn = Connection(server_stream, ServerConnection(), owner, 1)
            nursery.start_soon(conn.run)
            await peer_stream.send_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
            await conn.closed.wait()  # run() ended: the stream is closed
            assert [str(e) for e in owner.errors] == ["owner bug"]
            assert await peer_stream.receive_some(100) == b""  # EOF
        await listener.aclose()

    run(case)


def test_server_pings_and_drops_a_client_that_never_answers() -> None:
    async def case() -> None:
        errors: list[BaseException] = []
        server = echo_server(ping_interval=0.2, ping_timeout=0.3, on_error=[errors.append])
        async with server:
            mute = await RawPeer.connect(server.addr)  # reads, never answers a ping
            assert await mute.next_frame() == (9, b"ping")
            t0 = trio.current_time()
            assert await mute.at_eof()
            assert trio.current_time() - t0 < 2.0
        assert any(isinstance(e, ConnectionLost) for e in errors), errors

    run(case)


async def accept_upgrade(listener: trio.SocketListener) -> trio.SocketStream:
    """Accept one client on ``listener`` and answer its upgrade with 101."""
    from goomerang_proto.handshake import accept_token

    stream = await listener.accept()
    request = b""
    while b"\r\n\r\n" not in request:
        request += await stream.receive_some(65536)
    key = next(
        line.split(b":", 1)[1].strip().decode()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key")
    )
    await stream.send_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_token(key).encode() + b"\r\n\r\n"
    )
    return stream


def test_client_send_waits_while_the_server_does_not_read() -> None:
    """Flow control: above high water (write_limit) ``await send`` waits, memory stays bounded."""

    async def case() -> None:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        accepted: list[trio.SocketStream] = []

        async def upgrade_then_stall() -> None:  # answers the upgrade, then never reads
            accepted.append(await accept_upgrade(listener))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(upgrade_then_stall)
            c = client(f"127.0.0.1:{port}", write_limit=64 * 1024, close_timeout=0.2)
            async with c:
                sent = 0
                with trio.move_on_after(1.0) as blocked:
                    for _ in range(10_000):  # 1 GB if nothing ever waited
                        await c.send(msg("y" * 100_000))
                        sent += 1
                assert blocked.cancelled_caught, "send never waited"
                assert sent < 1000, sent  # kernel buffers plus one write_limit, not more
            for stream in accepted:
                await stream.aclose()
        await listener.aclose()

    run(case)


def test_client_refused_upgrade_double_connect_and_send_after_close() -> None:
    async def case() -> None:
        async with echo_server() as server:
            with pytest.raises(HandshakeError, match="404"):
                async with client(server.addr, path="/nope"):
                    pass
            c = client(server.addr)
            async with c:
                with pytest.raises(AlreadyRunning):
                    await c.connect()
                await c.close()
                assert c.status is Status.CLOSED and c.close_code == 1000
                with pytest.raises(NotRunning):
                    await c.send(msg("late"))
                await c.connect()  # again, by hand, inside the same `async with`
                assert (await c.send_sync(msg("again"))).payload.message == "again"

    run(case)


def test_subscriptions_per_connection_are_bounded() -> None:
    async def case() -> None:
        errors: list[BaseException] = []
        server = echo_server(max_subscriptions=2, on_error=[errors.append])
        async with server:
            got: list[str] = []
            seen = trio.Event()

            def on_message(_sender: Any, message: Message[Any]) -> None:
                got.append(message.payload.message)
                if message.payload.message == "fence":
                    seen.set()

            sub = client(server.addr)
            sub.handle(MessageV1, on_message)
            async with sub:
                for topic in ("a", "b", "c"):  # the third is over the cap
                    await sub.subscribe(topic)
                await sub.send(msg("fence"))  # echoed after the three commands were read
                await seen.wait()
                for topic in ("a", "b", "c"):
                    await server.publish(topic, msg(f"to {topic}"))
                seen = trio.Event()
                await sub.send(msg("fence"))  # after the publishes on the same connection
                await seen.wait()
        assert got == ["fence", "to a", "to b", "fence"]
        assert len(errors) == 1, errors  # the rule and its text are the asyncio server's
        assert "max_subscriptions=2 subscriptions; subscribe to 'c' ignored" in str(errors[0])

    run(case)


def test_public_calls_check_their_arguments_before_sending() -> None:
    """Issue 16 (fail fast) on trio too: TypeError/ValueError before any byte goes out."""

    async def case() -> None:
        seen: list[str] = []
        server = Server("127.0.0.1:0")

        def record(sender: Any, message: Message[Any]) -> None:
            seen.append(message.payload.message)
            sender.send(Message(message.payload, message.headers))

        server.handle(MessageV1, record)
        async with server, client(server.addr) as c:
            bad: list[tuple[Callable[[], Awaitable[Any]], type[Exception]]] = [
                (lambda: c.send(MessageV1(message="bare")), TypeError),  # type: ignore[arg-type]
                (lambda: c.send_sync(msg("x"), timeout="3"), TypeError),  # type: ignore[arg-type]
                (lambda: c.broadcast(MessageV1()), TypeError),  # type: ignore[arg-type]
                (lambda: c.publish(None, msg("x")), TypeError),  # type: ignore[arg-type]
                (lambda: c.subscribe(None), TypeError),  # type: ignore[arg-type]
                (lambda: c.close(1005), ValueError),
                (lambda: server.publish(None, msg("x")), TypeError),  # type: ignore[arg-type]
                (lambda: server.broadcast(MessageV1()), TypeError),  # type: ignore[arg-type]
            ]
            for call, exc in bad:
                with pytest.raises(exc):
                    await call()
            assert (await c.send_sync(msg("after"))).payload.message == "after"
        assert seen == ["after"]

    run(case)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: Server("127.0.0.1:0", max_queue_bytes=1024), "max_queue_bytes"),
        (lambda: Server("127.0.0.1:0", max_connections=1), "max_connections"),
        (lambda: Client("127.0.0.1:1", outbox_size=3), "outbox_size"),
    ],
)
def test_options_the_trio_runtime_does_not_enforce_are_refused(
    make: Callable[[], Any], name: str
) -> None:
    """Issue 16: an option is never silently ignored (the asyncio runtime has these)."""
    with pytest.raises(TypeError, match=f"{name} is not supported on the trio runtime"):
        make()


def test_empty_topic_commands_from_a_raw_peer_are_reported_and_ignored() -> None:
    """Issue 15: the empty topic is refused everywhere, trio included (a Go peer may send it)."""
    from goomerang_proto.codec import pack_publish_cmd, pack_subscribe_cmd

    async def case() -> None:
        errors: list[BaseException] = []
        server = echo_server(on_error=[errors.append])
        server.register_message(MessageV1)
        async with server:
            peer = await RawPeer.connect(server.addr)
            for payload in (pack_subscribe_cmd(""), pack_publish_cmd("", msg("to nobody"))):
                await peer.stream.send_all(build_frame(2, payload, mask=True, mask_key=b"abcd"))
            fence = pack(Message(MessageV1(message="fence")))  # echoed after both commands
            await peer.stream.send_all(build_frame(2, fence, mask=True, mask_key=b"abcd"))
            frame = await peer.next_frame()
            assert frame is not None and b"fence" in frame[1]
            assert b"to nobody" not in frame[1]
        assert [str(e) for e in errors] == [
            "subscribe with an empty topic from a client: ignored (topic is reserved)",
            "publish with an empty topic from a client: ignored (topic is reserved)",
        ]

    run(case)


def test_a_peer_publishing_to_itself_without_reading_is_paused_not_closed() -> None:
    """The copy of its own publish counts as output its input caused (as on asyncio)."""
    from goomerang_proto.codec import pack_publish_cmd, pack_subscribe_cmd

    async def case() -> None:
        errors: list[BaseException] = []
        server = echo_server(on_error=[errors.append], write_limit=16 * 1024)
        server.register_message(MessageV1)
        async with server:
            peer = await RawPeer.connect(server.addr)
            sub = build_frame(2, pack_subscribe_cmd("t"), mask=True, mask_key=b"abcd")
            pub = build_frame(
                2, pack_publish_cmd("t", msg("x" * 1000)), mask=True, mask_key=b"abcd"
            )
            await peer.stream.send_all(sub)
            sent = 0
            with trio.move_on_after(2.0):  # the server pauses reading: sends stop completing
                while sent < 16 * 1024 * 1024:  # 4x slow_client_limit, if nothing paused it
                    await peer.stream.send_all(pub * 16)
                    sent += len(pub) * 16
            assert sent < 16 * 1024 * 1024, "reading was never paused"
            assert server.connections() == 1  # paused, not closed by the output cap
        assert errors == []

    run(case)


def test_client_commands_follow_the_servers_rules_and_refusals_reach_our_client() -> None:
    """The asyncio server's rules (goomerang_io.handling.commands), on trio: client_publish
    patterns, client_broadcast and a can_subscribe veto; a refusal is reported on the server
    and, error replies being negotiated, on the client as PermissionDenied."""
    from goomerang_proto.errors import PermissionDenied

    server_errors: list[BaseException] = []
    client_errors: list[BaseException] = []
    got: list[str] = []

    async def case() -> None:
        refused, fence = trio.Event(), trio.Event()

        def on_client_error(exc: BaseException) -> None:
            client_errors.append(exc)
            if len(client_errors) == 3:
                refused.set()

        def on_message(_sender: Any, message: Message[Any]) -> None:
            got.append(message.payload.message)
            if message.payload.message == "fence":
                fence.set()

        server = echo_server(
            client_publish=("room.*",),
            client_broadcast=False,
            can_subscribe=lambda sender, topic: topic != "secret",
            on_error=[server_errors.append],
        )
        async with server:
            c = client(server.addr, on_error=[on_client_error])
            c.handle(MessageV1, on_message)
            async with c:
                await c.subscribe("room.1")
                await c.subscribe("secret")  # vetoed
                await c.publish("room.1", msg("allowed"))
                await c.publish("lobby", msg("not allowed"))
                await c.broadcast(msg("off"))
                await refused.wait()
                await c.send(msg("fence"))  # echoed after everything above was applied
                await fence.wait()
                with pytest.raises(UnexpectedReply):
                    await c.send_sync(msg("typed"), reply=ReplyV1)  # the echo is a MessageV1

    run(case)
    assert got == ["allowed", "fence"]
    assert [type(e) for e in server_errors] == [PermissionDenied] * 3
    assert [type(e) for e in client_errors] == [PermissionDenied] * 3
    assert "client_publish" in str(client_errors[1])
    assert "client_broadcast" in str(client_errors[2])


def test_no_new_upgrade_is_accepted_once_shutdown_began() -> None:
    """Conformance 9.2 on trio: during shutdown a new upgrade gets 503, as on asyncio."""

    async def case() -> None:
        server = echo_server(close_timeout=1.0, shutdown_timeout=0.2)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            stuck = await RawPeer.connect(server.addr)  # never answers the Close
            nursery.start_soon(server.shutdown)
            assert await stuck.close_code() == 1000  # the shutdown has begun
            assert server.status is Status.CLOSING
            late = await RawPeer.connect(server.addr, upgrade=False)
            await late.stream.send_all(
                f"GET /ws HTTP/1.1\r\nHost: {server.addr}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            assert (await late.head()).startswith(b"HTTP/1.1 503")
        assert server.status is Status.CLOSED

    run(case)


@pytest.mark.parametrize("concurrency", [10, 1], ids=["task", "inline"])
def test_a_client_handler_that_closes_its_client(concurrency: int) -> None:
    """close() from one of the client's handlers does not wait for that handler (a task
    of the handler nursery, or run inline by the reader): it returns after the handshake,
    not after close_timeout, and the client ends CLOSED with no error."""
    slow = 4.0  # close_timeout: what waiting for itself cost before

    async def case() -> None:
        server = echo_server()
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            errors: list[BaseException] = []
            c = client(
                server.addr, close_timeout=slow, max_concurrency=concurrency,
                on_error=[errors.append],
            )  # fmt: skip
            done = trio.Event()
            took: list[float] = []

            async def closer(_sender: Any, _message: Message[Any]) -> None:
                t0 = trio.current_time()
                await c.close()
                took.append(trio.current_time() - t0)
                done.set()

            c.handle(MessageV1, closer)
            async with c:
                await c.send(msg("close me"))
                with trio.fail_after(2 * slow):
                    await done.wait()
            assert took[0] < slow
            assert c.status is Status.CLOSED
            assert errors == []
            await server.shutdown()

    run(case)


def test_a_server_handler_that_shuts_its_server_down() -> None:
    """shutdown() from a handler closes every client with 1000 and ends CLOSED without
    waiting shutdown_timeout for that handler (serve() ends once the handler does)."""
    slow = 4.0  # shutdown_timeout

    async def case() -> None:
        server = Server("127.0.0.1:0", shutdown_timeout=slow)
        done = trio.Event()
        took: list[float] = []

        async def stopper(_sender: Any, _message: Message[Any]) -> None:
            t0 = trio.current_time()
            try:
                await server.shutdown()
                took.append(trio.current_time() - t0)
            finally:
                done.set()

        server.handle(MessageV1, stopper)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            errors: list[BaseException] = []
            c = client(server.addr, on_error=[errors.append])
            closed = trio.Event()
            c.on_status_change(lambda s: closed.set() if s is Status.CLOSED else None)
            async with c:
                await c.send(msg("stop"))
                with trio.fail_after(2 * slow):
                    await done.wait()
                    await closed.wait()
            assert took and took[0] < slow
            assert server.status is Status.CLOSED
            assert c.close_code == 1000
            assert errors == []

    run(case)


def test_leaving_async_with_ends_the_socket_of_a_closed_client() -> None:
    """The server sends Close 1000, then neither answers nor ends TCP. The client is CLOSED
    at once; leaving ``async with`` then ends its socket at once (it stayed open until
    garbage collection: the connection's task was cancelled before closing its stream)."""

    async def case() -> None:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        ended = trio.Event()

        async def close_then_linger() -> None:
            stream = await accept_upgrade(listener)
            await stream.send_all(build_frame(OP_CLOSE, b"\x03\xe8"))
            try:
                while await stream.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass
            ended.set()
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_then_linger)
            c = client(f"127.0.0.1:{port}", close_timeout=5.0)
            closed = trio.Event()
            c.on_status_change(lambda s: closed.set() if s is Status.CLOSED else None)
            async with c:
                await closed.wait()
            with trio.fail_after(2.0):  # well under close_timeout
                await ended.wait()
        await listener.aclose()

    run(case)
