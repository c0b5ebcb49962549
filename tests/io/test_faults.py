"""Faults over real sockets: cuts mid-frame, reconnect, slow readers, silent peers, drops."""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from faultproxy import FaultProxy
from hookwait import HookWait
from rawws import RawPeer, split_addr, upgrade_request
from serverproc import ServerProcess
from threaded import ThreadedServer
from util import run

from goomerang_io import Client, Server
from goomerang_io import sync as sync_client
from goomerang_proto import ConnectionLost, Message, NotRunning, Status
from goomerang_proto.pb.goomerang_example_pb2 import BadReplyV1, MessageV1, ReplyV1

WAIT = 5.0


def echo(sender: Any, message: Message[Any]) -> Any:
    return sender.send(Message(ReplyV1(message=message.payload.message), message.headers))


def setup_server(server: Server, silent: Callable[[], None] | None = None) -> None:
    server.handle(MessageV1, echo)
    server.register_message(ReplyV1)
    server.handle(BadReplyV1, lambda _s, _m: silent() if silent else None)  # never replies


BIG = "x" * 4000  # a message long enough that a cut after 100 bytes is mid-frame


def test_cut_mid_frame_reports_then_reconnects_and_resubscribes_asyncio() -> None:
    async def main() -> None:
        server = Server("127.0.0.1:0")
        setup_server(server)
        await server.start()
        got: asyncio.Queue[str] = asyncio.Queue()
        errors: list[BaseException] = []
        attempts: list[Any] = []
        with FaultProxy(split_addr(server.addr)) as proxy:
            client = Client(
                proxy.addr,
                heartbeat_interval=None,
                reconnect=True,
                reconnect_initial=0.05,
                on_error=errors.append,
                on_reconnect_attempt=lambda *a: attempts.append(a),
            )
            client.handle(MessageV1, lambda _s, m: got.put_nowait(m.payload.message))
            client.register_message(ReplyV1)
            hooks = HookWait().watch(client, "on_error", "on_status_change")
            hooks.watch(server, "on_subscribe")
            publisher = Client(server.addr, heartbeat_interval=None)
            await client.connect()
            await publisher.connect()
            await client.subscribe("t")
            await client.send_sync(Message(MessageV1(message="barrier")), timeout=WAIT)
            proxy.cut_after(down=100)
            await publisher.publish("t", Message(MessageV1(message=BIG)))
            await hooks.until(lambda: any(isinstance(e, ConnectionLost) for e in errors))
            assert proxy.cuts == 1
            await hooks.until(lambda: client.status is Status.RUNNING and len(attempts) >= 1)
            await hooks.until(lambda: len(server.topics.subscribers("t")) == 1)
            await publisher.publish("t", Message(MessageV1(message="after reconnect")))
            async with asyncio.timeout(WAIT):
                assert await got.get() == "after reconnect"  # the cut message never arrived
            await client.close()
            await publisher.close()
        await server.shutdown(timeout=2.0)

    run(main())


def test_cut_mid_frame_reports_then_reconnects_and_resubscribes_blocking() -> None:
    got: queue.Queue[str] = queue.Queue()
    errors: list[BaseException] = []
    hooks = HookWait()

    def setup(server: Server) -> None:
        setup_server(server)
        hooks.watch(server, "on_subscribe")

    with ThreadedServer(setup) as ts, FaultProxy(split_addr(ts.addr)) as proxy:
        client = sync_client.Client(
            proxy.addr,
            heartbeat_interval=None,
            reconnect=True,
            reconnect_initial=0.05,
            on_error=errors.append,
        )
        client.handle(MessageV1, lambda _s, m: got.put(m.payload.message))
        client.register_message(ReplyV1)
        hooks.watch(client, "on_error", "on_status_change")
        publisher = sync_client.Client(ts.addr, heartbeat_interval=None)
        with client, publisher:
            client.subscribe("t")
            client.send_sync(Message(MessageV1(message="barrier")), timeout=WAIT)
            proxy.cut_after(down=100)
            publisher.publish("t", Message(MessageV1(message=BIG)))
            hooks.wait(lambda: any(isinstance(e, ConnectionLost) for e in errors))
            hooks.wait(lambda: client.status is Status.RUNNING)
            assert ts.server is not None
            hooks.wait(lambda: len(ts.server.topics.subscribers("t")) == 1)
            publisher.publish("t", Message(MessageV1(message="after reconnect")))
            assert got.get(timeout=WAIT) == "after reconnect"


def test_pending_send_sync_fails_fast_and_sends_fail_while_disconnected_asyncio() -> None:
    async def main() -> None:
        received = asyncio.Event()
        server = Server("127.0.0.1:0")
        setup_server(server, received.set)
        await server.start()
        with FaultProxy(split_addr(server.addr)) as proxy:
            client = Client(proxy.addr, heartbeat_interval=None)
            hooks = HookWait().watch(client, "on_status_change")
            await client.connect()
            pending = asyncio.ensure_future(
                client.send_sync(Message(BadReplyV1(message="x")), timeout=30)
            )
            async with asyncio.timeout(WAIT):
                await received.wait()
            t0 = time.monotonic()
            proxy.cut_all()
            with pytest.raises(ConnectionLost):
                async with asyncio.timeout(WAIT):
                    await pending
            assert time.monotonic() - t0 < 2.0
            await hooks.until(lambda: client.status is Status.CLOSED)
            t0 = time.monotonic()
            with pytest.raises(NotRunning):
                await client.send(Message(MessageV1(message="while down")))
            with pytest.raises(NotRunning):
                await client.send_sync(Message(MessageV1(message="while down")))
            assert time.monotonic() - t0 < 0.5
        await server.shutdown(timeout=2.0)

    run(main())


def test_pending_send_sync_fails_fast_and_sends_fail_while_disconnected_blocking() -> None:
    received = threading.Event()
    with ThreadedServer(lambda s: setup_server(s, received.set)) as ts:
        with FaultProxy(split_addr(ts.addr)) as proxy:
            client = sync_client.Client(proxy.addr, heartbeat_interval=None)
            hooks = HookWait().watch(client, "on_status_change")
            client.connect()
            outcome: queue.Queue[BaseException | None] = queue.Queue()

            def waiter() -> None:
                try:
                    client.send_sync(Message(BadReplyV1(message="x")), timeout=30)
                    outcome.put(None)
                except BaseException as exc:
                    outcome.put(exc)

            threading.Thread(target=waiter, daemon=True).start()
            assert received.wait(WAIT)
            t0 = time.monotonic()
            proxy.cut_all()
            assert isinstance(outcome.get(timeout=WAIT), ConnectionLost)
            assert time.monotonic() - t0 < 2.0
            hooks.wait(lambda: client.status is Status.CLOSED)
            with pytest.raises(NotRunning):
                client.send(Message(MessageV1(message="while down")))


def test_peer_that_stops_answering_pings_is_closed_after_ping_timeout() -> None:
    async def main() -> None:
        errors: list[BaseException] = []
        server = Server("127.0.0.1:0", ping_interval=0.1, ping_timeout=0.2, on_error=errors.append)
        setup_server(server)
        hooks = HookWait().watch(server, "on_disconnect")
        await server.start()
        good = Client(server.addr, heartbeat_interval=None)  # the engine answers pings
        good.register_message(ReplyV1)
        await good.connect()
        peer = await RawPeer.connect(server.addr)  # reads but never answers a ping
        t0 = time.monotonic()
        frames = await peer.next_frames()
        assert frames[0] == (0x9, b"ping")
        assert await peer.eof(timeout=WAIT)
        elapsed = time.monotonic() - t0
        assert 0.15 <= elapsed < 2.0
        assert any("did not answer pings" in str(e) for e in errors)
        await hooks.until(lambda: server.connections() == 1)
        # The answering client lived through many ping periods.
        assert (await good.send_sync(Message(MessageV1(message="ok")))).payload.message == "ok"
        await good.close()
        await server.shutdown(timeout=2.0)

    run(main())


@pytest.mark.timeout(60)
def test_peer_that_never_reads_is_closed_and_server_memory_stays_bounded() -> None:
    n, size = 3000, 10_000  # 30 MB of broadcasts
    with ServerProcess(slow_client_limit=1_000_000, write_limit=64 * 1024) as proc:
        host, port = split_addr(proc.addr)
        lazy = socket.socket()
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lazy.connect((host, port))
        lazy.sendall(upgrade_request(proc.addr))
        lazy.settimeout(WAIT)
        assert lazy.recv(4096).startswith(b"HTTP/1.1 101")  # and never reads again

        async def main() -> tuple[int, int]:
            got = 0
            done = asyncio.Event()

            def handler(_s: Any, _m: Message[Any]) -> None:
                nonlocal got
                got += 1
                if got == n:
                    done.set()

            client = Client(proc.addr, heartbeat_interval=None)
            client.handle(MessageV1, handler)
            await client.connect()
            before = proc.rss_kb()
            for i in range(n):
                await client.broadcast(Message(MessageV1(message=str(i % 10) * size)))
            async with asyncio.timeout(30):
                await done.wait()
            after = proc.rss_kb()
            await client.close()
            return before, after

        before, after = run(main(), timeout=45)
        print(f"\nserver RSS {before} kB -> {after} kB after {n * size // 1_000_000} MB")
        # the lazy peer was dropped; the client's connection counts on the server until
        # its transport is really gone (lingering close), a moment after close() returned
        deadline = time.monotonic() + WAIT
        while (stats := proc.stats())["connections"] and time.monotonic() < deadline:
            pass
        assert stats["connections"] == 0, stats
        assert stats["errors"] >= 1
        lazy.close()
    assert after - before < 20_000, (before, after)
