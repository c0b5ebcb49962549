"""The embedded backplane: LocalHub relay and LocalBackplane clients over a real Unix socket.

The hub runs on its own selector loop in a thread here (in a server it runs
in the supervisor's loop); the worker-like clients share one asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from goomerang_io.backplane import (
    BackplaneMessage,
    BackplaneProtocolError,
    BackplaneUnavailable,
    LocalBackplane,
    LocalHub,
    backplane_from_url,
)
from goomerang_io.backplane.base import decode_envelope, encode_envelope, next_backoff
from goomerang_io.backplane.stream import EnvelopeStream, frame_envelope
from goomerang_proto.pb import goomerang_backplane_pb2 as pb

WAIT = 5.0


def run(coro_fn: Callable[[], Awaitable[None]], loop_kind: str = "asyncio") -> None:
    """Run an async test body on the stdlib loop or on uvloop."""
    factory = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(coro_fn(), 30))


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    """Both event loops a server may run on."""
    return str(request.param)


class HubThread:
    """A LocalHub served by its own selector loop in a background thread."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        self.hub = LocalHub(path, **kwargs)
        self.hub.open()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.hub.poll(0.02)
        self.hub.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        assert not self._thread.is_alive()


@pytest.fixture
def hub_path() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="gmhub-") as d:
        yield os.path.join(d, "hub.sock")


class Node:
    """A worker-like client: a LocalBackplane with an inbox and an error log."""

    def __init__(self, path: str, name: str) -> None:
        self.name = name
        self.bp = LocalBackplane(path, node_id=name, reconnect_backoff=(0.01, 0.1))
        self.inbox: list[BackplaneMessage] = []
        self.errors: list[Exception] = []
        self.health: list[bool] = []
        self.bp.on_health_change = self.health.append
        self._arrived = asyncio.Event()
        self._errored = asyncio.Event()

    async def start(self) -> None:
        await self.bp.start(self._deliver, self._error)

    def _deliver(self, msg: BackplaneMessage) -> None:
        self.inbox.append(msg)
        self._arrived.set()

    def _error(self, exc: Exception) -> None:
        self.errors.append(exc)
        self._errored.set()

    async def wait_for(self, frame: bytes) -> None:
        """Wait until a message with ``frame`` has arrived."""
        while not any(m.frame == frame for m in self.inbox):
            self._arrived.clear()
            await asyncio.wait_for(self._arrived.wait(), WAIT)

    async def wait_error(self) -> Exception:
        await asyncio.wait_for(self._errored.wait(), WAIT)
        return self.errors[-1]

    def frames(self) -> list[bytes]:
        return [m.frame for m in self.inbox]


async def nodes(path: str, *names: str) -> list[Node]:
    out = [Node(path, n) for n in names]
    for n in out:
        await n.start()
        assert n.bp.healthy()
    return out


# ------------------------------------------------------------------ the parser


envelopes = st.builds(
    lambda op, origin, topic, kind, frame: encode_envelope(op, origin, topic, kind, frame),
    st.sampled_from([pb.Envelope.DELIVER, pb.Envelope.SUBSCRIBE, pb.Envelope.HELLO]),
    st.text(max_size=10),
    st.text(max_size=10),
    st.text(max_size=10),
    st.binary(max_size=64),
)


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(envelopes, max_size=8), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_stream_split_anywhere_gives_the_same_envelopes(
    payloads: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(frame_envelope(p) for p in payloads)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    stream = EnvelopeStream()
    got: list[bytes] = []
    for chunk in chunks:
        got += stream.feed(chunk)
    assert got == payloads
    assert stream.buffered == 0
    assert [decode_envelope(p) for p in got] == [decode_envelope(p) for p in payloads]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_fail_with_the_documented_error(data: bytes) -> None:
    stream = EnvelopeStream(max_size=128)
    try:
        for payload in stream.feed(data):
            with contextlib.suppress(BackplaneProtocolError):
                decode_envelope(payload)
    except BackplaneProtocolError:
        with pytest.raises(BackplaneProtocolError):
            stream.feed(b"")  # a failed stream stays failed


def test_oversized_length_fails_before_the_payload_arrives() -> None:
    stream = EnvelopeStream(max_size=1000)
    with pytest.raises(BackplaneProtocolError, match="exceeds the limit of 1000"):
        stream.feed(struct.pack(">I", 1001))


def test_next_backoff_doubles_up_to_the_cap() -> None:
    delays = [0.0]
    for _ in range(10):
        delays.append(next_backoff(delays[-1], 0.1, 1.0))
    assert delays[1:5] == [0.1, 0.2, 0.4, 0.8]
    assert max(delays) == 1.0 and delays[-1] == 1.0


def test_backplane_from_url() -> None:
    assert backplane_from_url(None, hub_path=None) is None
    local = backplane_from_url(None, hub_path="/tmp/x.sock")
    assert isinstance(local, LocalBackplane) and local.path == "/tmp/x.sock"
    with pytest.raises(ValueError, match="unknown backplane"):
        backplane_from_url("amqp://x", hub_path=None)
    with pytest.raises(ValueError, match="workers > 1"):
        backplane_from_url("local", hub_path=None)


# ------------------------------------------------------------------ relay


def test_broadcast_reaches_every_other_worker_exactly_once_and_never_echoes(
    hub_path: str, loop_kind: str
) -> None:
    hub = HubThread(hub_path)

    async def body() -> None:
        a, b, c = await nodes(hub_path, "a", "b", "c")
        for node in (a, b, c):
            for i in range(5):
                await node.bp.broadcast("k.Kind", f"{node.name}{i}".encode())
        fences = [f"{n.name}4".encode() for n in (a, b, c)]
        for node in (a, b, c):
            for fence in fences:
                if not fence.startswith(node.name.encode()):
                    await node.wait_for(fence)
        for node in (a, b, c):
            others = [n for n in "abc" if n != node.name]
            expected = sorted(f"{o}{i}".encode() for o in others for i in range(5))
            assert sorted(node.frames()) == expected  # exactly once each, nothing of its own
            assert all(m.origin != node.name and m.is_broadcast for m in node.inbox)
            assert all(m.kind == "k.Kind" for m in node.inbox)
            # one sender's messages arrive in its order
            for o in others:
                mine = [f for f in node.frames() if f.startswith(o.encode())]
                assert mine == [f"{o}{i}".encode() for i in range(5)]
        assert hub.hub.status()["peers"] == 3
        for node in (a, b, c):
            await node.bp.close()

    try:
        run(body, loop_kind)
    finally:
        hub.stop()


def test_publish_reaches_only_the_workers_holding_the_topic(hub_path: str, loop_kind: str) -> None:
    hub = HubThread(hub_path)

    async def body() -> None:
        a, b, c = await nodes(hub_path, "a", "b", "c")
        await b.bp.subscribe("news")  # returns once the hub acknowledged it
        await a.bp.subscribe("news")  # the publisher's own interest must not echo
        await a.bp.publish("news", "k.Kind", b"n1")
        await a.bp.publish("sport", "k.Kind", b"s1")
        await a.bp.broadcast("k.Kind", b"fence")  # relayed after n1 and s1
        await b.wait_for(b"fence")
        await c.wait_for(b"fence")
        assert b.frames() == [b"n1", b"fence"]
        assert b.inbox[0].topic == "news" and not b.inbox[0].is_broadcast
        assert c.frames() == [b"fence"]
        assert a.frames() == []
        await b.bp.unsubscribe("news")
        await a.bp.publish("news", "k.Kind", b"n2")
        await a.bp.broadcast("k.Kind", b"fence2")
        await b.wait_for(b"fence2")
        assert b.frames() == [b"n1", b"fence", b"fence2"]
        with pytest.raises(ValueError):
            await a.bp.publish("", "k", b"x")
        for node in (a, b, c):
            await node.bp.close()

    try:
        run(body, loop_kind)
    finally:
        hub.stop()


def test_hub_outage_reports_drops_reconnects_and_resubscribes(
    hub_path: str, loop_kind: str
) -> None:
    hub = HubThread(hub_path)

    async def body() -> None:
        nonlocal hub
        a, b = await nodes(hub_path, "a", "b")
        await b.bp.subscribe("news")
        hub.stop()
        err = await a.wait_error()
        assert isinstance(err, BackplaneUnavailable) and "lost the backplane hub" in str(err)
        await b.wait_error()
        assert not a.bp.healthy() and a.bp.status()["connected"] is False
        a.errors.clear()
        await a.bp.broadcast("k", b"lost")  # does not raise: reported and counted
        assert any("unreachable" in str(e) for e in a.errors)
        assert a.bp.status()["dropped"] == 1
        hub = HubThread(hub_path)
        await asyncio.wait_for(a.bp.wait_connected(), WAIT)
        await asyncio.wait_for(b.bp.wait_connected(), WAIT)
        assert a.bp.status()["reconnects"] == 1
        assert a.health == b.health == [True, False, True]  # the metric's transitions
        # b re-announced "news" on reconnect, before anything a sends now
        await a.bp.publish("news", "k", b"after")
        await b.wait_for(b"after")
        assert b"lost" not in b.frames()
        for node in (a, b):
            await node.bp.close()

    try:
        run(body, loop_kind)
    finally:
        hub.stop()


def test_start_without_a_hub_reports_and_keeps_trying(hub_path: str, loop_kind: str) -> None:
    async def body() -> None:
        (a,) = [Node(hub_path, "a")]
        await a.start()  # returns after the first failed attempt
        assert not a.bp.healthy()
        assert "cannot reach backplane hub" in str(await a.wait_error())
        hub = HubThread(hub_path)
        try:
            await asyncio.wait_for(a.bp.wait_connected(), WAIT)
            assert a.bp.healthy()
        finally:
            await a.bp.close()
            hub.stop()

    run(body, loop_kind)


def test_hub_drops_a_peer_that_sends_garbage_and_keeps_serving(
    hub_path: str, loop_kind: str
) -> None:
    hub = HubThread(hub_path, max_envelope=1024)

    async def body() -> None:
        a, b = await nodes(hub_path, "a", "b")
        bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bad.settimeout(WAIT)
        bad.connect(hub_path)
        bad.sendall(struct.pack(">I", 4096) + b"x" * 16)  # over max_envelope
        assert await asyncio.to_thread(bad.recv, 10) == b""  # the hub hung up on it
        bad.close()
        await a.bp.broadcast("k", b"still")
        await b.wait_for(b"still")
        for node in (a, b):
            await node.bp.close()

    try:
        run(body, loop_kind)
    finally:
        hub.stop()


def test_hub_drops_messages_for_a_worker_that_stops_reading(hub_path: str, loop_kind: str) -> None:
    hub = HubThread(hub_path, max_buffer=64 * 1024)

    async def body() -> None:
        a, b = await nodes(hub_path, "a", "b")
        stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(hub_path)  # never reads
        stuck.sendall(frame_envelope(encode_envelope(pb.Envelope.HELLO, "stuck")))
        await a.bp.broadcast("k", b"hello")
        await b.wait_for(b"hello")  # the hub has accepted "stuck" by now
        payload = b"x" * 8192
        n = 200  # 1.6 MB for the stuck peer: far past its socket buffers and max_buffer
        for i in range(n):
            await a.bp.broadcast("k", payload + str(i).encode())
            if i % 4 == 3:  # pace the sender so that b (same loop) stays under max_buffer
                await b.wait_for(payload + str(i).encode())
        last = payload + str(n - 1).encode()
        await b.wait_for(last)
        assert len(b.inbox) == n + 1  # the reading worker got every one
        assert hub.hub.dropped > 0
        stuck.close()
        for node in (a, b):
            await node.bp.close()

    try:
        run(body, loop_kind)
    finally:
        hub.stop()


def test_close_flushes_what_was_sent_and_leaves_the_hub(hub_path: str, loop_kind: str) -> None:
    hub = HubThread(hub_path)

    async def body() -> None:
        a, b = await nodes(hub_path, "a", "b")
        for i in range(3):
            await a.bp.broadcast("k", f"last{i}".encode())
        await a.bp.close()  # right after sending: the coalesced writes still go out
        await a.bp.close()  # idempotent
        assert not a.bp.healthy()
        await b.wait_for(b"last2")
        assert b.frames() == [b"last0", b"last1", b"last2"]
        await b.bp.close()
        assert a.frames() == []

    try:
        run(body, loop_kind)
    finally:
        hub.stop()


def test_hub_close_removes_the_socket_file(hub_path: str) -> None:
    hub = HubThread(hub_path)
    assert Path(hub_path).exists()
    hub.stop()
    assert not Path(hub_path).exists()
