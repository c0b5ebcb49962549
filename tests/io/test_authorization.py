"""Authorization (issue 16, inputs 1-3): who may subscribe, publish, broadcast; rooms; 401.

Each refusal is checked on both ends: the server's on_error gets
PermissionDenied, our client's on_error gets PermissionDenied (error replies
negotiated), a peer that did not negotiate (the Go client's case) gets
nothing, and no subscriber receives a refused fan-out: a marker published by
the server after the refusal arrives first (one connection is ordered).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import util
from rawws import RawPeer, http_exchange, upgrade_request
from threaded import ThreadedServer
from util import Inbox, connected, msg, new_client, recorder_handler, run, running

from goomerang_io import ANONYMOUS, PermissionDenied, Rejection, Request, Sender, Server
from goomerang_io import sync as sync_client
from goomerang_proto import HandshakeError, Message
from goomerang_proto.codec import pack_publish_cmd, pack_subscribe_cmd
from goomerang_proto.frames import OP_BINARY
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1


def new_server(**kwargs: Any) -> Server:
    """A server that can decode the fanned-out kinds (commands carry a payload)."""
    server = util.new_server(**kwargs)
    server.register_message(MessageV1)
    server.register_message(ReplyV1)
    return server


def denied(items: list[Any]) -> list[PermissionDenied]:
    return [e for e in items if isinstance(e, PermissionDenied)]


async def client_with_inbox(server: Server, **kwargs: Any) -> tuple[Any, Inbox, Inbox]:
    inbox, errors = Inbox(), Inbox()
    client = new_client(server, on_error=errors, **kwargs)
    client.handle(MessageV1, recorder_handler(inbox))
    return client, inbox, errors


@pytest.mark.parametrize(
    ("options", "topic"),
    [
        ({"client_publish": False}, "room.admins"),
        ({"client_publish": ("room.public", "chat.*")}, "room.admins"),
        ({"can_publish": lambda s, t, m: s.identity == "admin"}, "room.admins"),
        ({"can_publish": lambda s, t, m: 1 / 0}, "room.admins"),  # a raising check refuses
    ],
)
def test_a_refused_client_publish_reaches_nobody_and_both_ends_are_told(
    options: dict[str, Any], topic: str
) -> None:
    async def main() -> None:
        server_errors, subscribed = Inbox(), Inbox()
        server = new_server(on_error=server_errors, on_subscribe=subscribed, **options)
        async with running(server):
            sub, inbox, _ = await client_with_inbox(server)
            pub, _, pub_errors = await client_with_inbox(server)
            async with connected(sub), connected(pub):
                await sub.subscribe(topic)
                await subscribed.wait_count(1)
                await pub.publish(topic, msg("forged"))
                err = await pub_errors.wait_for(lambda e: isinstance(e, PermissionDenied))
                assert topic in str(err)
                await server_errors.wait_for(lambda e: isinstance(e, PermissionDenied))
                await server.publish(topic, msg("marker"))
                await inbox.wait_count(1)
                assert [m.payload.message for m in inbox.items] == ["marker"]

    run(main())


def test_allowed_patterns_still_fan_out() -> None:
    async def main() -> None:
        server = new_server(client_publish=("chat.*",), client_subscribe=("chat.*",))
        async with running(server):
            sub, inbox, _ = await client_with_inbox(server)
            async with connected(sub):
                await sub.subscribe("chat.lobby")
                await sub.publish("chat.lobby", msg("hi"))
                await inbox.wait_count(1)
                assert inbox.items[0].payload.message == "hi"

    run(main())


@pytest.mark.parametrize(
    "options",
    [{"client_broadcast": False}, {"can_broadcast": lambda s, m: False}],
)
def test_a_refused_client_broadcast_reaches_nobody(options: dict[str, Any]) -> None:
    async def main() -> None:
        server = new_server(**options)
        async with running(server):
            other, inbox, _ = await client_with_inbox(server)
            caller, _, caller_errors = await client_with_inbox(server)
            async with connected(other), connected(caller):
                await caller.broadcast(msg("forged"))
                await caller_errors.wait_for(lambda e: isinstance(e, PermissionDenied))
                await server.broadcast(msg("marker"))
                await inbox.wait_count(1)
                assert [m.payload.message for m in inbox.items] == ["marker"]

    run(main())


def test_a_refused_subscribe_is_not_applied_and_identity_is_seen() -> None:
    seen: list[tuple[Any, str]] = []

    def can_subscribe(sender: Sender, topic: str) -> bool:
        seen.append((sender.identity, topic))
        return topic != "secret"

    async def main() -> None:
        server = new_server(can_subscribe=can_subscribe, authenticate=lambda r: "bob")
        async with running(server):
            client, inbox, errors = await client_with_inbox(server)
            async with connected(client):
                await client.subscribe("secret")
                await client.subscribe("public")
                await errors.wait_for(lambda e: isinstance(e, PermissionDenied))
                await server.publish("secret", msg("leak"))
                await server.publish("public", msg("ok"))
                await inbox.wait_count(1)
                assert [m.payload.message for m in inbox.items] == ["ok"]
                assert seen == [("bob", "secret"), ("bob", "public")]
                assert server.topics.subscribers("secret") == []

    run(main())


def test_an_async_check_is_refused_with_a_reason() -> None:
    async def check(sender: Sender, topic: str) -> bool:
        return True

    async def main() -> None:
        server_errors = Inbox()
        server = new_server(can_subscribe=check, on_error=server_errors)  # type: ignore[arg-type]
        async with running(server):
            client, _, _ = await client_with_inbox(server)
            async with connected(client):
                await client.subscribe("t")
                err = await server_errors.wait_for(lambda e: isinstance(e, PermissionDenied))
                assert "plain functions" in str(err)

    run(main())


def test_a_peer_that_did_not_negotiate_gets_no_error_message() -> None:
    """The Go client's case: refused commands are dropped silently, the connection stays."""

    async def main() -> None:
        server_errors = Inbox()
        server = new_server(client_publish=False, client_subscribe=False, on_error=server_errors)
        async with running(server):
            peer = await RawPeer.connect(server.addr)
            try:
                peer.send_frame(OP_BINARY, pack_subscribe_cmd("t"))
                peer.send_frame(OP_BINARY, pack_publish_cmd("t", msg("forged")))
                await server_errors.wait_until(lambda items: len(denied(items)) == 2)
                await server.broadcast(msg("marker"))  # the first thing it may read
                frames = await peer.next_frames()
                assert len(frames) == 1
                assert b"marker" in frames[0][1]
                assert server.connections() == 1
            finally:
                peer.abort()

    run(main())


def test_the_server_joins_a_connection_to_a_room_input_3() -> None:
    """Input 3: server.subscribe(topic, sender) then publish raised AttributeError."""

    async def main() -> None:
        server = util.new_server(client_subscribe=False)
        joined = Inbox()

        def join(sender: Sender, message: Message[Any]) -> None:
            room = message.payload.message
            if room == "via-server":
                server.subscribe("room.1", sender)
            else:
                sender.subscribe("room.2")
            joined.put(room)

        server.handle(MessageV1, join)
        async with running(server):
            client, _, _ = await client_with_inbox(server)
            inbox = Inbox()
            client.handle(ReplyV1, recorder_handler(inbox))
            async with connected(client):
                await client.send(msg("via-server"))
                await client.send(msg("via-sender"))
                await joined.wait_count(2)
                await server.publish("room.1", Message(ReplyV1(message="one")))
                await server.publish("room.2", Message(ReplyV1(message="two")))
                await inbox.wait_count(2)
                assert [m.payload.message for m in inbox.items] == ["one", "two"]

    run(main())


def test_server_subscribe_checks_its_arguments() -> None:
    async def main() -> None:
        server = new_server()
        async with running(server):
            with pytest.raises(TypeError, match="sender"):
                server.subscribe("t", object())  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="topic"):
                server.subscribe(None, object())  # type: ignore[arg-type]

    run(main())


def test_authenticate_returning_none_is_401_and_anonymous_is_explicit_input_2() -> None:
    tokens = {"good": "alice"}

    def authenticate(request: Request) -> Any:
        header = request.header("authorization", "")
        if header == "anonymous":
            return ANONYMOUS
        return tokens.get(header or "")

    async def main() -> None:
        server = new_server(authenticate=authenticate)
        identities = Inbox()
        server.handle(MessageV1, lambda s, m: identities.put(s.identity))
        async with running(server):
            status, _ = await http_exchange(
                server.addr, upgrade_request(server.addr, headers=[("Authorization", "bad")])
            )
            assert status == 401
            client = new_client(server, headers=[("Authorization", "bad")])
            with pytest.raises(HandshakeError) as info:
                await client.connect()
            assert info.value.status == 401
            for header in ("good", "anonymous"):
                async with connected(new_client(server, headers=[("Authorization", header)])) as c:
                    await c.send(msg())
            await identities.wait_count(2)
            assert identities.items == ["alice", ANONYMOUS]
            assert repr(ANONYMOUS) == "ANONYMOUS"

    run(main())


def test_routes_are_protected_by_authorize() -> None:
    def authorize(request: Request) -> Any:
        if request.header("authorization") == "Bearer scrape":
            return "prometheus"
        if request.header("authorization") is not None:
            return Rejection(403, b"wrong token\n")
        return None

    async def main() -> None:
        server = new_server()
        server.route("/metrics", lambda r: "goomerang_up 1\n", authorize=authorize)
        async with running(server):
            head = "GET /metrics HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n"
            status, _ = await http_exchange(server.addr, head.format("").encode())
            assert status == 401
            bad = head.format("Authorization: Bearer nope\r\n").encode()
            assert (await http_exchange(server.addr, bad))[0] == 403
            good = head.format("Authorization: Bearer scrape\r\n").encode()
            assert (await http_exchange(server.addr, good))[0] == 200

    run(main())


def test_the_blocking_client_is_told_of_a_refusal() -> None:
    refused = threading.Event()
    errors: list[BaseException] = []

    def on_error(exc: BaseException) -> None:
        errors.append(exc)
        if isinstance(exc, PermissionDenied):
            refused.set()

    with (
        ThreadedServer(lambda s: s.register_message(MessageV1), client_publish=False) as ts,
        sync_client.Client(ts.addr, heartbeat_interval=None, on_error=on_error) as client,
    ):
        client.publish("t", msg("forged"))
        assert refused.wait(5.0), errors
        assert client.status.name == "RUNNING"
