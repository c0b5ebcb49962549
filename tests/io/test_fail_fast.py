"""Fail fast, in the caller (issue 16, inputs 8-10 and 15).

Argument mistakes raise TypeError/ValueError naming the argument before any
byte is sent; outgoing messages are checked against our own
max_message_size; a sync request whose reply cannot be decoded, has no
handler or whose handler raised fails at once instead of at its timeout;
TLS failures say what failed; a non-101 answer to the upgrade fails at once
with its status whatever its body. Each check runs on the asyncio client,
the blocking client and the server where it applies.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from rawws import RawPeer
from test_tls import make_cert
from util import (
    WAIT,
    Inbox,
    connected,
    echo,
    msg,
    new_client,
    new_server,
    reply,
    run,
    running,
)

import goomerang_io
import goomerang_proto
from goomerang_io import (
    Client,
    GoomerangError,
    HandshakeError,
    Message,
    MessageTooLarge,
    RemoteError,
    Sender,
    Server,
    TLSError,
    UnexpectedReply,
    UnknownKind,
)
from goomerang_io import sync as sync_client
from goomerang_io.options import ClientOptions, ServerOptions, check_options
from goomerang_proto import Status
from goomerang_proto.codec import pack
from goomerang_proto.frames import OP_BINARY
from goomerang_proto.pb.goomerang_example_pb2 import BadReplyV1, MessageV1, ReplyV1

LONG = 30.0
"""A timeout the failures must not wait for: each test bounds itself by WAIT."""

BAD_CALLS: list[tuple[str, Callable[[Any], Any], type[Exception], str]] = [
    ("send_sync timeout str", lambda c: c.send_sync(msg(), timeout="3"), TypeError, "timeout"),
    ("send_sync timeout 0", lambda c: c.send_sync(msg(), timeout=0), ValueError, "timeout"),
    ("send_sync bare protobuf", lambda c: c.send_sync(MessageV1()), TypeError, "Message("),
    ("send bare protobuf", lambda c: c.send(MessageV1(message="x")), TypeError, "Message("),
    ("send None", lambda c: c.send(None), TypeError, "message"),
    ("send int header", lambda c: c.send(msg(headers={"n": 1})), TypeError, "headers"),  # type: ignore[dict-item]
    ("broadcast bare", lambda c: c.broadcast(MessageV1()), TypeError, "Message("),
    ("publish topic None", lambda c: c.publish(None, msg()), TypeError, "topic"),
    ("publish bare", lambda c: c.publish("t", MessageV1()), TypeError, "Message("),
    ("subscribe None", lambda c: c.subscribe(None), TypeError, "topic"),
    ("unsubscribe int", lambda c: c.unsubscribe(3), TypeError, "topic"),
    ("close code 1005", lambda c: c.close(1005), ValueError, "code"),
    ("close code str", lambda c: c.close("1000"), TypeError, "code"),
]


def counting_server(**kwargs: Any) -> tuple[Server, Inbox]:
    """An echo server that records every message its handler saw."""
    seen = Inbox()
    server = new_server(**kwargs)

    def handler(sender: Sender, message: Message[Any]) -> Any:
        seen.put(message.payload.message)
        return echo(sender, message)

    server.handle(MessageV1, handler)
    return server, seen


@pytest.mark.parametrize(("what", "call", "exc", "names"), BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_asyncio_client_rejects_bad_arguments_before_sending(
    what: str, call: Callable[[Any], Any], exc: type[Exception], names: str
) -> None:
    async def main() -> None:
        server, seen = counting_server()
        async with running(server):
            errors = Inbox()
            client = new_client(server, on_error=errors)
            client.register_message(ReplyV1)
            async with connected(client):
                with pytest.raises(exc, match=names.replace("(", r"\(")):
                    result = call(client)
                    if inspect.isawaitable(result):
                        await result
                assert client.status is Status.RUNNING
                # nothing reached the server: the next request is the first it sees
                got = await client.send_sync(msg("after"), timeout=WAIT)
                assert got.payload.message == "after"
                assert seen.items == ["after"]
                assert not [e for e in errors.items if isinstance(e, UnexpectedReply)]

    run(main())


@pytest.mark.parametrize(("what", "call", "exc", "names"), BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_blocking_client_rejects_bad_arguments_before_sending(
    what: str, call: Callable[[Any], Any], exc: type[Exception], names: str
) -> None:
    async def main() -> None:
        server, seen = counting_server()
        async with running(server):
            client = sync_client.Client(server.addr, heartbeat_interval=None)
            client.register_message(ReplyV1)
            await asyncio.to_thread(client.connect)
            try:

                def misuse() -> None:
                    with pytest.raises(exc, match=names.replace("(", r"\(")):
                        call(client)

                await asyncio.to_thread(misuse)
                got = await asyncio.to_thread(client.send_sync, msg("after"), WAIT)
                assert got.payload.message == "after"
                assert seen.items == ["after"]
            finally:
                if client.status is Status.RUNNING:
                    await asyncio.to_thread(client.close)

    run(main())


def test_server_side_calls_check_their_arguments() -> None:
    async def main() -> None:
        server = new_server(max_message_size=1000)
        failures = Inbox()

        def handler(sender: Sender, message: Message[Any]) -> Any:
            for call in (
                lambda: sender.send(ReplyV1(message="bare")),  # type: ignore[arg-type]
                lambda: sender.send(reply("x" * 2000)),
                lambda: sender.subscribe(None),  # type: ignore[arg-type]
                lambda: sender.send(Message(ReplyV1(message="h"), {"n": 1})),  # type: ignore[dict-item]
                lambda: sender.send(Message(ReplyV1(message="h"), {"l": []})),  # type: ignore[dict-item]
                # a mapping that is not a dict: refused in both builds (the compiled one
                # checks the annotation, the pure codec the same rule)
                lambda: sender.send(Message(ReplyV1(message="h"), MappingProxyType({"k": "v"}))),  # type: ignore[arg-type]
            ):
                try:
                    call()
                except (TypeError, MessageTooLarge) as exc:
                    failures.put(exc)
            return sender.send(reply("ok"))

        server.handle(MessageV1, handler)
        async with running(server):
            with pytest.raises(TypeError, match=r"Message\("):
                await server.broadcast(MessageV1())  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="topic"):
                await server.publish(None, msg())  # type: ignore[arg-type]
            with pytest.raises(MessageTooLarge):
                await server.publish("t", msg("x" * 2000))
            with pytest.raises(TypeError, match="timeout"):
                await server.shutdown(timeout="1")  # type: ignore[arg-type]
            client = new_client(server)
            client.register_message(ReplyV1)
            async with connected(client):
                got = await client.send_sync(msg(), timeout=WAIT)
                assert got.payload.message == "ok"
            kinds = [type(e) for e in failures.items]
            assert kinds == [TypeError, MessageTooLarge, TypeError, TypeError, TypeError, TypeError]
            assert all("headers must map str to str" in str(e) for e in failures.items[3:5])
            assert "headers must be a dict[str, str], got mappingproxy" in str(failures.items[5])

    run(main())


@pytest.mark.parametrize(
    ("make", "exc", "text"),
    [
        (lambda: Server(8080), TypeError, "address"),  # type: ignore[arg-type]
        (lambda: Server("127.0.0.1:70000"), ValueError, "port"),
        (lambda: Client(8080), TypeError, "address"),  # type: ignore[arg-type]
        (lambda: Client("h:1", headers=[("x-n", 1)]), TypeError, "headers"),  # type: ignore[list-item]
        (lambda: Client("h:1", headers={"a": "b"}), TypeError, "headers"),  # type: ignore[arg-type]
        (lambda: Client("h:1", tls=True), TypeError, "tls"),  # type: ignore[arg-type]
        (lambda: sync_client.Client(8080), TypeError, "address"),  # type: ignore[arg-type]
        (lambda: sync_client.Client("h:1", headers=[("x", 2)]), TypeError, "headers"),  # type: ignore[list-item]
        (lambda: Server("h:1", client_publish="room.*"), TypeError, "client_publish"),
        (lambda: Server("h:1", can_publish=3), TypeError, "can_publish"),  # type: ignore[arg-type]
    ],
)
def test_constructors_check_their_arguments(make: Callable[[], Any], exc: type, text: str) -> None:
    with pytest.raises(exc, match=text):
        make()


OPTION_MISTAKES = [
    ("max_message_size", "1", TypeError, "max_message_size must be an int"),
    ("ping_interval", "5", TypeError, "ping_interval must be a number of seconds"),
    ("max_concurrency", "3", TypeError, "max_concurrency must be an int"),
    ("write_limit", -5, ValueError, "write_limit must be at least 1"),
    ("shutdown_timeout", -1, ValueError, "shutdown_timeout must not be negative"),
    ("handshake_timeout", 0, ValueError, "handshake_timeout must be more than 0"),
    ("client_publish", "room.*", TypeError, "client_publish must be True, False or a sequence"),
    ("slow_client_code", 999, ValueError, "slow_client_code must be a close code"),
    ("compression", 1, TypeError, "compression must be True or False"),
]
CLIENT_OPTION_MISTAKES = [
    ("reconnect", "yes", TypeError, "reconnect must be True or False"),
    ("heartbeat_interval", "5", TypeError, "heartbeat_interval must be a number of seconds"),
    ("close_timeout", -1, ValueError, "close_timeout must not be negative"),
    ("max_pending_sync", 0, ValueError, "max_pending_sync must be at least 1"),
    ("reconnect_initial", float("nan"), ValueError, "reconnect_initial must be more than 0"),
]


@pytest.mark.parametrize(("name", "value", "exc", "text"), OPTION_MISTAKES)
def test_server_option_values_are_checked_when_built(
    name: str, value: Any, exc: type, text: str
) -> None:
    """A bad value fails in Server(...), naming the option, not later in every connection."""
    with pytest.raises(exc, match=text):
        Server("127.0.0.1:0", **{name: value})


@pytest.mark.parametrize(("name", "value", "exc", "text"), CLIENT_OPTION_MISTAKES)
@pytest.mark.parametrize("runtime", ["asyncio", "blocking"])
def test_client_option_values_are_checked_when_built(
    runtime: str, name: str, value: Any, exc: type, text: str
) -> None:
    make = Client if runtime == "asyncio" else sync_client.Client
    with pytest.raises(exc, match=text):
        make("127.0.0.1:1", **{name: value})


def test_every_option_has_a_value_rule() -> None:
    """check_options knows every field's type (a new option without a rule fails here)."""
    check_options(ServerOptions())
    check_options(ClientOptions())


def test_outgoing_messages_are_checked_against_our_own_limit() -> None:
    """A message above max_message_size fails in the caller, not as a 1009 close."""

    async def main() -> None:
        server, seen = counting_server()
        async with running(server):
            client = new_client(server, max_message_size=1000)
            client.register_message(ReplyV1)
            async with connected(client):
                for call in (
                    lambda: client.send(msg("x" * 2000)),
                    lambda: client.send_sync(msg("x" * 2000)),
                    lambda: client.broadcast(msg("x" * 2000)),
                    lambda: client.publish("t", msg("x" * 2000)),
                ):
                    with pytest.raises(MessageTooLarge):
                        await call()
                assert client.status is Status.RUNNING
                got = await client.send_sync(msg("small"), timeout=WAIT)
                assert got.payload.message == "small"
                assert seen.items == ["small"]
            blocking = sync_client.Client(
                server.addr, heartbeat_interval=None, max_message_size=1000
            )
            await asyncio.to_thread(blocking.connect)
            try:
                with pytest.raises(MessageTooLarge):
                    await asyncio.to_thread(blocking.send, msg("x" * 2000))
                assert blocking.status is Status.RUNNING
            finally:
                await asyncio.to_thread(blocking.close)

    run(main())


def failing_server() -> Server:
    server = new_server()

    def boom(sender: Sender, message: Message[Any]) -> Any:
        raise RuntimeError("secret internals")

    async def aboom(sender: Sender, message: Message[Any]) -> Any:
        await asyncio.sleep(0)
        raise RuntimeError("secret internals")

    def wrong_kind(sender: Sender, message: Message[Any]) -> Any:
        return sender.send(Message(BadReplyV1(message="unregistered on the client")))

    def route(sender: Sender, message: Message[Any]) -> Any:
        text = message.payload.message
        handler = {"boom": boom, "aboom": aboom, "wrong": wrong_kind}.get(text, echo)
        return handler(sender, message)

    server.handle(MessageV1, route)
    return server


@pytest.mark.parametrize(
    ("text", "exc", "code"),
    [
        ("boom", RemoteError, "handler-error"),
        ("aboom", RemoteError, "handler-error"),
        ("wrong", UnknownKind, None),
    ],
)
def test_failed_requests_fail_at_once_input_8(text: str, exc: type, code: str | None) -> None:
    async def main() -> None:
        server = failing_server()
        async with running(server):
            client = new_client(server)
            client.register_message(ReplyV1)
            async with connected(client):
                t0 = time.monotonic()
                with pytest.raises(exc) as info:
                    await client.send_sync(msg(text), timeout=LONG)
                assert time.monotonic() - t0 < WAIT
                if code is not None:
                    assert info.value.code == code
                    assert "secret" not in str(info.value)
                got = await client.send_sync(msg("next"), timeout=WAIT)
                assert got.payload.message == "next"
                assert len(client._pending) == 0
            blocking = sync_client.Client(server.addr, heartbeat_interval=None)
            blocking.register_message(ReplyV1)
            await asyncio.to_thread(blocking.connect)
            try:
                with pytest.raises(exc):
                    await asyncio.wait_for(
                        asyncio.to_thread(blocking.send_sync, msg(text), LONG), WAIT
                    )
                with pytest.raises(RemoteError) as nohandler:
                    await asyncio.wait_for(
                        asyncio.to_thread(blocking.send_sync, Message(ReplyV1()), LONG), WAIT
                    )
                assert nohandler.value.code == "no-handler"
            finally:
                await asyncio.to_thread(blocking.close)

    run(main())


def test_a_peer_that_did_not_negotiate_never_gets_an_error_reply() -> None:
    """The Go client decodes the kind before the uuid: an error kind would confuse it."""

    async def main() -> None:
        server = failing_server()
        async with running(server):
            peer = await RawPeer.connect(server.addr)
            try:
                for text in ("boom", "aboom"):
                    frame = pack(Message(MessageV1(message=text)), uuid="u-" + text, is_sync=True)
                    peer.send_frame(OP_BINARY, frame)
                nohandler = pack(Message(ReplyV1()), uuid="u-none", is_sync=True)
                peer.send_frame(OP_BINARY, nohandler)
                frame = pack(Message(MessageV1(message="ping")), uuid="u-ping", is_sync=True)
                peer.send_frame(OP_BINARY, frame)
                frames = await peer.next_frames()
                assert len(frames) == 1
                assert b"u-ping" in frames[0][1]
            finally:
                peer.abort()

    run(main())


@pytest.fixture
def tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    cert, key = make_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    return server_ctx, cert


@pytest.mark.parametrize("blocking", [False, True])
def test_tls_failures_say_what_failed_input_10(
    tls_contexts: tuple[ssl.SSLContext, Path], blocking: bool
) -> None:
    server_ctx, cert = tls_contexts

    async def attempt(addr: str, **kwargs: Any) -> BaseException:
        kwargs.setdefault("heartbeat_interval", None)
        kwargs.setdefault("handshake_timeout", WAIT)
        try:
            if blocking:
                await asyncio.to_thread(sync_client.Client(addr, **kwargs).connect)
            else:
                await Client(addr, **kwargs).connect()
        except GoomerangError as exc:
            return exc
        raise AssertionError("connected")

    async def main() -> None:
        server = new_server(tls=server_ctx)
        async with running(server):
            wrong_ca = await attempt(server.addr, tls=ssl.create_default_context())
            assert isinstance(wrong_ca, TLSError)
            assert "certificate verification failed" in str(wrong_ca)
            trusting = ssl.create_default_context(cafile=str(cert))
            wrong_name = await attempt(server.addr, tls=trusting, server_hostname="example.org")
            assert isinstance(wrong_name, TLSError)
            assert "example.org" in str(wrong_name)
            plain = await attempt(server.addr)
            assert isinstance(plain, HandshakeError)
            assert "TLS" in str(plain)

    run(main())


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>no length, never ends",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 100\r\n\r\npartial",
    ],
)
@pytest.mark.parametrize("blocking", [False, True])
def test_a_non_101_answer_fails_at_once_with_its_status_input_15(
    answer: bytes, blocking: bool
) -> None:
    async def main() -> None:
        held: list[asyncio.StreamWriter] = []

        async def wrong_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)  # and keep the connection open, body unfinished
            held.append(writer)

        listener = await asyncio.start_server(wrong_server, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        addr = f"127.0.0.1:{port}"
        try:
            t0 = time.monotonic()
            with pytest.raises(HandshakeError) as info:
                if blocking:
                    c = sync_client.Client(addr, heartbeat_interval=None, handshake_timeout=LONG)
                    await asyncio.to_thread(c.connect)
                else:
                    c2 = Client(addr, heartbeat_interval=None, handshake_timeout=LONG)
                    await c2.connect()
            assert time.monotonic() - t0 < WAIT
            assert info.value.status == int(answer.split()[1])
        finally:
            for w in held:
                w.transport.abort()
            listener.close()

    run(main())


def test_every_exception_is_importable_from_goomerang_io() -> None:
    errors = set()
    for package in (goomerang_proto, goomerang_io):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".pb." in info.name or info.name.endswith((".pb", "__main__")):
                continue
            if ".conformance" in info.name:  # a test tool's own control flow, not the API
                continue
            module = importlib.import_module(info.name)
            errors.update(
                obj
                for obj in vars(module).values()
                if isinstance(obj, type)
                and issubclass(obj, Exception)
                and obj.__module__.startswith(("goomerang_proto", "goomerang_io"))
            )
    assert len(errors) > 20
    missing = sorted(e.__name__ for e in errors if getattr(goomerang_io, e.__name__, None) is not e)
    assert missing == []


def test_send_sync_reply_class_is_checked_at_run_time() -> None:
    async def main() -> None:
        server, _ = counting_server()
        async with running(server):
            client = new_client(server)
            client.register_message(ReplyV1)
            async with connected(client):
                got = await client.send_sync(msg("typed"), reply=ReplyV1)
                assert got.payload.message == "typed"
                with pytest.raises(UnexpectedReply, match=r"expected goomerang\.example\.Mess"):
                    await client.send_sync(msg("x"), reply=MessageV1)
                with pytest.raises(TypeError, match="reply"):
                    await client.send_sync(msg("x"), reply=int)  # type: ignore[type-var]

    run(main())
