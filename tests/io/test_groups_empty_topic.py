"""The empty topic is refused the same way in 1 process, 2 workers and 2 nodes (Redis).

Our clients raise ValueError before sending; a raw peer (as a Go client may)
sends PublishCmd, SubscribeCmd and a group SubscribeCmd with topic "": the
server reports each through on_error and ignores it, so nobody anywhere
gets anything from them, while a broadcast still reaches every client.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rawws import RawPeer
from redis_server import RedisServer
from test_workers import Peer, Workers, peers_on_two_workers

from goomerang_io import Client, Server
from goomerang_io.backplane.redis import RedisBackplane
from goomerang_io.loop import run
from goomerang_proto import GoomerangError, Message
from goomerang_proto.codec import pack_broadcast_cmd, pack_publish_cmd, pack_subscribe_cmd
from goomerang_proto.frames import OP_BINARY
from goomerang_proto.pb import goomerang_frame_pb2 as pb
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

WAIT = 5.0
BAD_COMMANDS = 4  # subscribe, group subscribe, publish, publish again


def _m(text: str) -> Message[MessageV1]:
    return Message(MessageV1(message=text))


async def _client_side_refusals(client: Client) -> None:
    """Our client raises ValueError and sends nothing."""
    for call in (
        lambda: client.publish("", _m("x")),
        lambda: client.subscribe(""),
        lambda: client.subscribe("", group="g"),
        lambda: client.unsubscribe(""),
    ):
        with pytest.raises(ValueError):
            await call()


async def _raw_bad_commands(addr: str, fence: str) -> list[str]:
    """A raw peer sends the bad commands, then a broadcast ``fence``; return what it got."""
    peer = await RawPeer.connect(addr, [("Goomerang-Extensions", "queue-groups")])
    for data in (
        pack_subscribe_cmd(""),
        pack_subscribe_cmd("", group="g"),
        pack_publish_cmd("", _m("empty-1")),
        pack_publish_cmd("", _m("empty-2")),
        pack_broadcast_cmd(_m(fence)),
    ):
        peer.send_frame(OP_BINARY, data)
    got: list[str] = []
    async with asyncio.timeout(WAIT):
        while fence not in got:
            for _op, payload in await peer.next_frames():
                frame = pb.Frame.FromString(payload)
                got.append(MessageV1.FromString(frame.payload).message)
    peer.abort()
    return got


async def _until_fence(inbox: asyncio.Queue[str], fence: str) -> list[str]:
    got = []
    while (m := await asyncio.wait_for(inbox.get(), WAIT)) != fence:
        got.append(m)
    return got


def _is_empty_topic_error(exc: BaseException) -> bool:
    return isinstance(exc, GoomerangError) and "empty topic" in str(exc)


# ------------------------------------------------------------------ 1 process


def test_one_process() -> None:
    async def main() -> None:
        errors: list[BaseException] = []
        server = Server("127.0.0.1:0", on_error=errors.append)
        server.register_message(MessageV1)
        await server.start()
        inbox: asyncio.Queue[str] = asyncio.Queue()
        client = Client(server.addr, heartbeat_interval=None)
        client.handle(MessageV1, lambda _s, m: inbox.put_nowait(m.payload.message))
        await client.connect()
        await _client_side_refusals(client)
        got = await _raw_bad_commands(server.addr, "fence-1p")
        assert got == ["fence-1p"]
        assert await _until_fence(inbox, "fence-1p") == []
        assert [e for e in errors if _is_empty_topic_error(e)] == errors
        assert len(errors) == BAD_COMMANDS
        with pytest.raises(ValueError):
            await server.publish("", Message(ReplyV1(message="x")))
        assert "" not in server.topics and "" not in server.groups
        await client.close()
        await server.shutdown()

    run(main())


# ------------------------------------------------------------------ 2 nodes


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


def test_two_nodes(redis: RedisServer) -> None:
    async def main() -> None:
        errors: dict[str, list[BaseException]] = {"a": [], "b": []}
        servers = []
        for name in ("a", "b"):
            server = Server(
                "127.0.0.1:0",
                backplane=RedisBackplane(redis.url, node_id=name),
                on_error=errors[name].append,
            )
            server.register_message(MessageV1)
            await server.start()
            await asyncio.wait_for(server.backplane.wait_connected(), WAIT)
            servers.append(server)
        a = servers[0]
        inboxes = []
        clients = []
        for server in servers:
            inbox: asyncio.Queue[str] = asyncio.Queue()
            client = Client(server.addr, heartbeat_interval=None)
            client.handle(MessageV1, lambda _s, m, q=inbox: q.put_nowait(m.payload.message))
            await client.connect()
            inboxes.append(inbox)
            clients.append(client)
        await _client_side_refusals(clients[1])
        got = await _raw_bad_commands(a.addr, "fence-2n")
        assert got == ["fence-2n"]
        for inbox in inboxes:  # node a's client and node b's client
            assert await _until_fence(inbox, "fence-2n") == []
        assert len(errors["a"]) == BAD_COMMANDS
        assert all(_is_empty_topic_error(e) for e in errors["a"])
        assert errors["b"] == []  # nothing crossed to node b
        for client in clients:
            await client.close()
        for server in servers:
            await server.shutdown()

    run(main())


# ------------------------------------------------------------------ 2 workers


def _errors_total(addr: str) -> float:
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=WAIT) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "goomerang_server_errors_total":
                return float(sample.value)
    return 0.0


@pytest.fixture
def workers() -> Iterator[Workers]:
    server = Workers(2)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


@pytest.mark.timeout(90)
def test_two_workers(workers: Workers) -> None:
    async def main() -> None:
        peers: list[Peer] = await peers_on_two_workers(workers.addr, want=4)
        await _client_side_refusals(peers[0].client)
        before = await asyncio.to_thread(_errors_total, workers.addr)
        got = await _raw_bad_commands(workers.addr, "fence-2w")
        assert got == ["fence-2w"]
        for p in peers:  # clients on both workers: only the broadcast
            assert await _until_fence(p.inbox, "fence-2w") == []
        # the worker that served the raw peer reported each bad command once
        deadline = time.monotonic() + WAIT
        after = before
        while after - before < BAD_COMMANDS and time.monotonic() < deadline:
            after = await asyncio.to_thread(_errors_total, workers.addr)
        assert after - before == BAD_COMMANDS
        for p in peers:
            await p.client.close()

    run(main())
    assert workers.stop() == 0
