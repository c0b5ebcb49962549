"""Queue groups in one process: exactly one member per group, negotiation, wire fields."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from rawws import RawPeer, split_addr
from test_fanout import barrier, clients, fanout_server, hook_calls, texts
from util import WAIT, Inbox, connected, msg, new_client, poll_until, run, running

from goomerang_io import Client
from goomerang_io.sync import Client as SyncClient
from goomerang_proto import Message, events
from goomerang_proto.codec import pack_subscribe_cmd, pack_unsubscribe_cmd
from goomerang_proto.extensions import ExtensionNotNegotiated
from goomerang_proto.frames import OP_BINARY
from goomerang_proto.handshake import accept_token
from goomerang_proto.pb import goomerang_frame_pb2 as pb
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1


def group_hooks(server: Any) -> Inbox:
    joins = Inbox()
    server.add_hook("on_group_join", lambda t, g: joins.put(("join", t, g)))
    server.add_hook("on_group_leave", lambda t, g: joins.put(("leave", t, g)))
    return joins


def test_each_publish_reaches_one_member_per_group_and_every_plain_subscriber() -> None:
    async def main() -> None:
        server, _hooks = fanout_server()
        joins = group_hooks(server)
        async with running(server), clients(server, 6) as cs:
            boxes = [box for _c, box in cs]
            workers = cs[:3]  # group "w"
            auditors = cs[3:5]  # group "a"
            plain = cs[5]
            for client, _box in workers:
                await client.subscribe("jobs", group="w")
            for client, _box in auditors:
                await client.subscribe("jobs", group="a")
            await plain[0].subscribe("jobs")
            await joins.wait_count(5)
            n = 60
            for i in range(n):
                await plain[0].publish("jobs", msg(f"job-{i}"))
            await barrier(server, boxes, via=plain[0])
            got_w = [texts(box) for _c, box in workers]
            got_a = [texts(box) for _c, box in auditors]
            # exactly once per group, and fair: round robin gives equal shares
            assert sorted(t for got in got_w for t in got) == sorted(f"job-{i}" for i in range(n))
            assert sorted(t for got in got_a for t in got) == sorted(f"job-{i}" for i in range(n))
            assert [len(x) for x in got_w] == [20, 20, 20]
            assert [len(x) for x in got_a] == [30, 30]
            assert texts(plain[1]) == [f"job-{i}" for i in range(n)]  # plain: all, in order

    run(main())


def test_leaving_the_group_and_disconnecting_stop_deliveries() -> None:
    async def main() -> None:
        server, hooks = fanout_server()
        joins = group_hooks(server)
        async with running(server), clients(server, 3) as cs:
            (a, box_a), (b, box_b), (pub, box_p) = cs
            await a.subscribe("t", group="g")
            await b.subscribe("t", group="g")
            await a.subscribe("t", group="g")  # joining twice is one membership
            await joins.wait_count(2)
            await a.unsubscribe("t", group="g")
            await joins.wait_for(lambda x: x == ("leave", "t", "g"))
            for i in range(4):
                await pub.publish("t", msg(f"m{i}"))
            await barrier(server, [box_a, box_b, box_p], via=pub)
            assert texts(box_a) == []
            assert texts(box_b) == ["m0", "m1", "m2", "m3"]
            # a grouped unsubscribe does not touch a plain subscription, and back
            await a.subscribe("t")
            await a.unsubscribe("t", group="g")
            await pub.publish("t", msg("plain"))
            await barrier(server, [box_a, box_b], via=pub)
            assert texts(box_a) == ["plain"]
            await asyncio.wait_for(b.close(), WAIT)
            await joins.wait_until(lambda items: items.count(("leave", "t", "g")) == 2)
            await hooks.wait_until(lambda _: len(hook_calls(hooks, "on_disconnect")) == 1)
            assert server.groups.members("t", "g") == []
            results = await server.publish("t", Message(ReplyV1(message="after")))
            assert len(results) == 1  # a (plain) only: the group is gone

    run(main())


def test_server_side_api_subscribes_a_connection_into_a_group() -> None:
    async def main() -> None:
        server, _hooks = fanout_server()
        joined = Inbox()

        def join_me(sender: Any, message: Message[Any]) -> None:
            server.subscribe("jobs", sender, group=message.payload.message)
            joined.put(sender.conn_id)

        server.handle(MessageV1, join_me)
        async with running(server), clients(server, 2) as cs:
            (a, box_a), (b, box_b) = cs
            await a.send(msg("g1"))
            await b.send(msg("g1"))
            await joined.wait_count(2)
            for i in range(6):
                await server.publish("jobs", Message(ReplyV1(message=f"j{i}")))
            await box_a.wait_count(3)
            await box_b.wait_count(3)
            assert len(texts(box_a)) == 3 and len(texts(box_b)) == 3
            with pytest.raises(ValueError):
                server.subscribe("jobs", a_sender_of(server), group="")
            with pytest.raises(ValueError):
                await server.publish("", Message(ReplyV1(message="x")))

    run(main())


def a_sender_of(server: Any) -> Any:
    proto = next(iter(server._conns))
    return proto.sender


def test_a_member_over_its_write_limit_is_skipped() -> None:
    async def main() -> None:
        server, _hooks = fanout_server(write_limit=64 * 1024, slow_client_limit=0)
        async with running(server), clients(server, 2) as cs:
            (fast, box_fast), _publisher = cs
            await fast.subscribe("t", group="g")
            # a raw member that never reads: its write buffer fills up
            stuck = await RawPeer.connect(server.addr, [("Goomerang-Extensions", "queue-groups")])
            stuck.send_frame(OP_BINARY, pack_subscribe_cmd("t", group="g"))
            await fast.send_sync(msg("sync"), timeout=WAIT)
            await poll_members(server, "t", "g", 2)
            fast_proto = server.groups.members("t", "g")[0]
            big = "x" * 1_000_000  # the kernel's socket buffers hold a few of them
            for _ in range(30):
                await server.publish("t", Message(ReplyV1(message=big)))
                # let the fast member drain (it reads; the stuck one never does)
                await poll_until(lambda: fast_proto.transport.get_write_buffer_size() == 0)
            await server.publish("t", Message(ReplyV1(message="last")))
            await box_fast.wait_until(lambda items: any(m.payload.message == "last" for m in items))
            # round robin would give each 15 of the 30; the stuck one fills its
            # buffers after a few and is skipped from then on
            assert len(box_fast.items) > 22
            stuck.abort()

    run(main())


async def poll_members(server: Any, topic: str, group: str, n: int) -> None:
    await poll_until(lambda: len(server.groups.members(topic, group)) >= n, WAIT)


# ---------------------------------------------------------------- wire


def test_group_fields_on_the_wire() -> None:
    sub = pb.SubscribeCmd.FromString(pb.SubscribeCmd(topic="t", group="g").SerializeToString())
    assert (sub.topic, sub.group) == ("t", "g")
    # field 100, length-delimited: tag varint (100 << 3 | 2) = 0xa2 0x06
    assert pb.SubscribeCmd(group="g").SerializeToString() == b"\xa2\x06\x01g"
    assert pb.UnsubscribeCmd(group="g").SerializeToString() == b"\xa2\x06\x01g"
    # a plain command has no group field at all: byte-identical to v0.3.0
    assert pb.SubscribeCmd(topic="t").SerializeToString() == b"\x0a\x01t"
    frame = pb.Frame.FromString(pack_unsubscribe_cmd("t", group="g"))
    assert frame.kind == "goomerang.protocol.UnsubscribeCmd"
    assert pb.UnsubscribeCmd.FromString(frame.payload).group == "g"


def test_raw_frames_with_the_group_field_join_and_leave() -> None:
    async def main() -> None:
        server, _hooks = fanout_server()
        joins = group_hooks(server)
        async with running(server):
            peer = await RawPeer.connect(server.addr)  # no offer: the server still reads it
            peer.send_frame(OP_BINARY, pack_subscribe_cmd("t", group="g"))
            assert await joins.wait_count(1) == [("join", "t", "g")]
            await server.publish("t", Message(ReplyV1(message="one")))
            frames = await peer.next_frames()
            assert pb.Frame.FromString(frames[0][1]).kind == "goomerang.example.ReplyV1"
            peer.send_frame(OP_BINARY, pack_unsubscribe_cmd("t", group="g"))
            await joins.wait_count(2)
            assert joins.items[1] == ("leave", "t", "g")
            peer.abort()

    run(main())


def test_the_server_echoes_the_offer_and_only_to_clients_that_offer() -> None:
    async def main() -> None:
        server, _hooks = fanout_server()
        async with running(server):
            for headers, echoed in (
                ([("Goomerang-Extensions", "queue-groups, future-thing")], True),
                ([("goomerang-extensions", "future-thing")], False),
                ([], False),
            ):
                host, port = split_addr(server.addr)
                reader, writer = await asyncio.open_connection(host, port)
                from rawws import upgrade_request

                writer.write(upgrade_request(server.addr, headers=headers))
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
                assert head.startswith(b"HTTP/1.1 101")
                assert (b"Goomerang-Extensions: queue-groups\r\n" in head) is echoed, head
                writer.transport.abort()
            client = new_client(server)
            async with connected(client):
                await client.subscribe("t", group="g")  # negotiated: accepted

    run(main())


async def _server_without_the_extension() -> tuple[asyncio.AbstractServer, str]:
    """A minimal WebSocket server that answers 101 without Goomerang-Extensions."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_token(key).encode() + b"\r\n\r\n"
        )
        await reader.read()  # hold the connection until the client goes

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    return srv, f"127.0.0.1:{port}"


def test_a_group_subscribe_raises_locally_without_the_echo() -> None:
    async def main() -> None:
        srv, addr = await _server_without_the_extension()
        async with srv:
            client = Client(addr, heartbeat_interval=None)
            async with connected(client):
                with pytest.raises(ExtensionNotNegotiated):
                    await client.subscribe("t", group="g")
                with pytest.raises(ExtensionNotNegotiated):
                    await client.unsubscribe("t", group="g")
                await client.subscribe("t")  # plain subscriptions still work
                for bad in ("", None):
                    with pytest.raises(ValueError):
                        await client.subscribe("", group=bad)
                with pytest.raises(ValueError):
                    await client.subscribe("t", group="")
            srv.close()

    run(main())


def test_blocking_client_groups_and_refusal() -> None:
    async def main() -> None:
        server, _hooks = fanout_server()
        joins = group_hooks(server)
        srv, bare_addr = await _server_without_the_extension()
        errors: list[BaseException] = []
        async with running(server), srv:

            def blocking() -> None:
                with SyncClient(server.addr, heartbeat_interval=None) as c:
                    c.subscribe("t", group="g")
                    c.unsubscribe("t", group="g")
                    with pytest.raises(ValueError):
                        c.publish("", msg())
                with SyncClient(bare_addr, heartbeat_interval=None) as c:
                    with pytest.raises(ExtensionNotNegotiated):
                        c.subscribe("t", group="g")

            def guarded() -> None:
                try:
                    blocking()
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=guarded)
            thread.start()
            await joins.wait_count(2)
            assert joins.items == [("join", "t", "g"), ("leave", "t", "g")]
            await asyncio.to_thread(thread.join, WAIT)
            srv.close()
        assert not errors, errors

    run(main())


# ---------------------------------------------------------------- engine


def test_engine_negotiation_without_sockets() -> None:
    from goomerang_proto import ClientConnection, ServerConnection

    for offer, expect in (((), frozenset()), (("queue-groups",), frozenset({"queue-groups"}))):
        client = ClientConnection("h", offer=offer)
        server = ServerConnection()
        server.receive_data(client.data_to_send())
        client.receive_data(server.data_to_send())
        assert any(isinstance(e, events.Connected) for e in client.events())
        assert client.extensions == expect
        assert server.extensions == expect
        if not expect:
            with pytest.raises(ExtensionNotNegotiated):
                client.subscribe("t", "g")
