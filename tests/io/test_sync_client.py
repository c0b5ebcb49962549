"""The blocking client (goomerang_io.sync.Client) against the asyncio Server in a thread."""

from __future__ import annotations

import datetime
import queue
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from threaded import ThreadedServer

from goomerang_io import Server
from goomerang_io.sync import Client
from goomerang_proto import (
    ConnectionLost,
    GoomerangError,
    HandlerError,
    HandshakeError,
    Message,
    NotRunning,
    Status,
    SyncTimeout,
    TooManyPending,
)
from goomerang_proto.pb.goomerang_example_pb2 import BadReplyV1, MessageV1, ReplyV1

WAIT = 5.0


def echo(sender: Any, message: Message[Any]) -> Any:
    """Answer with ReplyV1 carrying the same text and headers."""
    return sender.send(Message(ReplyV1(message=message.payload.message), dict(message.headers)))


def echo_server(server: Server) -> None:
    server.handle(MessageV1, echo)
    server.register_message(ReplyV1)


def new_client(ts: ThreadedServer, **kwargs: Any) -> Client:
    kwargs.setdefault("heartbeat_interval", None)
    client = Client(ts.addr, **kwargs)
    return client


def test_round_trip_and_handlers_run_on_the_reader_thread() -> None:
    got: queue.Queue[tuple[Message[Any], str]] = queue.Queue()
    with ThreadedServer(echo_server) as ts:
        client = new_client(ts)
        client.handle(ReplyV1, lambda _s, m: got.put((m, threading.current_thread().name)))
        with client:
            assert client.status is Status.RUNNING
            assert client.send(Message(MessageV1(message="hi"), {"k": "v"})) == 4
            message, thread = got.get(timeout=WAIT)
        assert client.status is Status.CLOSED
    assert message.payload.message == "hi"
    assert message.headers == {"k": "v"}
    assert thread != threading.current_thread().name


def test_send_sync_returns_the_reply_and_times_out_without_one() -> None:
    with ThreadedServer(echo_server) as ts:
        client = new_client(ts)
        client.register_message(ReplyV1)
        with client:
            reply = client.send_sync(Message(MessageV1(message="ping")), timeout=WAIT)
            assert reply.payload == ReplyV1(message="ping")
            assert reply.is_sync
            # Many threads at once share one connection.
            results: queue.Queue[str] = queue.Queue()

            def worker(i: int) -> None:
                r = client.send_sync(Message(MessageV1(message=f"m{i}")), timeout=WAIT)
                results.put(r.payload.message)

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(WAIT)
            assert sorted(results.get_nowait() for _ in range(8)) == sorted(
                f"m{i}" for i in range(8)
            )


def test_send_sync_timeout() -> None:
    def setup(server: Server) -> None:
        server.handle(BadReplyV1, lambda _s, _m: None)  # never replies

    with ThreadedServer(setup) as ts, new_client(ts) as client:
        with pytest.raises(SyncTimeout):
            client.send_sync(Message(BadReplyV1(message="x")), timeout=0.2)
        assert len(client._pending) == 0


def test_pub_sub_and_broadcast_between_two_blocking_clients() -> None:
    def setup(server: Server) -> None:
        echo_server(server)

    inbox_a: queue.Queue[str] = queue.Queue()
    inbox_b: queue.Queue[str] = queue.Queue()
    with ThreadedServer(setup) as ts:
        a = new_client(ts)
        b = new_client(ts)
        a.handle(MessageV1, lambda _s, m: inbox_a.put(m.payload.message))
        b.handle(MessageV1, lambda _s, m: inbox_b.put(m.payload.message))
        a.register_message(ReplyV1)
        with a, b:
            a.subscribe("t1")
            # A sync round trip on the same connection orders it after the subscribe.
            a.send_sync(Message(MessageV1(message="barrier")), timeout=WAIT)
            b.publish("t1", Message(MessageV1(message="pub")))
            assert inbox_a.get(timeout=WAIT) == "pub"
            b.broadcast(Message(MessageV1(message="all")))
            assert inbox_a.get(timeout=WAIT) == "all"
            assert inbox_b.get(timeout=WAIT) == "all"
            a.unsubscribe("t1")
            a.send_sync(Message(MessageV1(message="barrier")), timeout=WAIT)
            b.publish("t1", Message(MessageV1(message="gone")))
            b.broadcast(Message(MessageV1(message="after")))
            assert inbox_a.get(timeout=WAIT) == "after"  # "gone" never came first
            assert inbox_b.get(timeout=WAIT) == "after"
            assert inbox_b.empty()


def test_close_then_sends_fail_with_not_running_and_connect_works_again() -> None:
    statuses: list[Status] = []
    closed = threading.Event()
    disconnected = threading.Event()

    def setup(server: Server) -> None:
        echo_server(server)
        server.add_hook("on_disconnect", lambda _s: disconnected.set())

    with ThreadedServer(setup) as ts:
        client = new_client(ts, on_status_change=statuses.append, on_close=closed.set)
        client.register_message(ReplyV1)
        with pytest.raises(NotRunning):
            client.send(Message(MessageV1(message="early")))
        client.connect()
        client.close()
        assert closed.is_set()
        assert disconnected.wait(WAIT)
        assert client.status is Status.CLOSED
        assert statuses == [Status.RUNNING, Status.CLOSING, Status.CLOSED]
        with pytest.raises(NotRunning):
            client.send(Message(MessageV1(message="late")))
        with pytest.raises(NotRunning):
            client.send_sync(Message(MessageV1(message="late")))
        with pytest.raises(NotRunning):
            client.close()
        client.connect()
        assert client.send_sync(Message(MessageV1(message="again")), timeout=WAIT).payload == (
            ReplyV1(message="again")
        )
        client.close()


def test_pending_send_sync_fails_with_connection_lost_when_the_server_shuts_down() -> None:
    received = threading.Event()

    def setup(server: Server) -> None:
        server.handle(BadReplyV1, lambda _s, _m: received.set())  # never replies

    errors: list[BaseException] = []
    outcome: queue.Queue[BaseException | None] = queue.Queue()
    with ThreadedServer(setup, shutdown_timeout=0.5) as ts:
        client = new_client(ts, on_error=errors.append)
        client.connect()

        def waiter() -> None:
            try:
                client.send_sync(Message(BadReplyV1(message="x")), timeout=30)
                outcome.put(None)
            except BaseException as exc:
                outcome.put(exc)

        t = threading.Thread(target=waiter)
        t.start()
        assert received.wait(WAIT)
        assert ts.server is not None
        ts.call(ts.server.shutdown, timeout=WAIT + 3)
        exc = outcome.get(timeout=WAIT)
        t.join(WAIT)
    assert isinstance(exc, ConnectionLost)
    assert client.status is Status.CLOSED
    assert errors == []  # a graceful shutdown (Close 1000) is no error; the waiter still fails
    with pytest.raises(NotRunning):
        client.send(Message(BadReplyV1(message="x")))


def test_too_many_pending() -> None:
    started: queue.Queue[None] = queue.Queue()

    def setup(server: Server) -> None:
        server.handle(BadReplyV1, lambda _s, _m: started.put(None))  # never replies

    with ThreadedServer(setup) as ts, new_client(ts, max_pending_sync=2) as client:
        outcomes: queue.Queue[BaseException] = queue.Queue()

        def waiter() -> None:
            try:
                client.send_sync(Message(BadReplyV1(message="x")), timeout=WAIT)
            except BaseException as exc:
                outcomes.put(exc)

        threads = [threading.Thread(target=waiter) for _ in range(2)]
        for t in threads:
            t.start()
        started.get(timeout=WAIT)
        started.get(timeout=WAIT)
        with pytest.raises(TooManyPending):
            client.send_sync(Message(BadReplyV1(message="x")), timeout=WAIT)
        client.close()  # fails the two waiters at once
        for t in threads:
            t.join(WAIT)
        assert [type(outcomes.get_nowait()) for _ in range(2)] == [ConnectionLost] * 2


def test_handler_errors_and_send_sync_in_a_handler_are_reported() -> None:
    errors: queue.Queue[BaseException] = queue.Queue()

    def handler(_sender: Any, message: Message[Any]) -> None:
        if message.payload.message == "boom":
            raise RuntimeError("boom")
        client.send_sync(Message(MessageV1(message="nested")))

    with ThreadedServer(echo_server) as ts:
        client = new_client(ts, on_error=errors.put)
        client.handle(ReplyV1, handler)
        with client:
            client.send(Message(MessageV1(message="boom")))
            first = errors.get(timeout=WAIT)
            client.send(Message(MessageV1(message="other")))
            second = errors.get(timeout=WAIT)
    assert isinstance(first, HandlerError) and "boom" in str(first)
    assert isinstance(second, HandlerError)
    assert isinstance(second.__cause__, GoomerangError)
    assert "send_sync cannot be called from a handler" in str(second.__cause__)


def test_rejected_upgrade_raises_handshake_error() -> None:
    from goomerang_io import Rejection

    with ThreadedServer(echo_server, authenticate=lambda _r: Rejection(401, b"no\n")) as ts:
        client = new_client(ts)
        with pytest.raises(HandshakeError) as info:
            client.connect()
        assert info.value.status == 401
        assert client.status is Status.NEW


def test_heartbeat_pings_are_answered() -> None:
    errors: list[BaseException] = []
    with ThreadedServer(echo_server) as ts:
        client = new_client(ts, heartbeat_interval=0.05, ping_timeout=0.5, on_error=errors.append)
        client.register_message(ReplyV1)
        with client:
            # Several heartbeat periods pass while we exchange messages; none times out.
            for i in range(20):
                assert client.send_sync(Message(MessageV1(message=str(i))), timeout=WAIT)
            link = client._link
            assert link is not None
            done = threading.Event()
            # A deliberately idle wait (bounded): pings flow and get answered meanwhile.
            done.wait(0.3)
            assert client.status is Status.RUNNING
            assert link.pongs >= 2
        assert errors == []


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp / "cert.pem"
    key_path = tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_round_trip(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    got: queue.Queue[str] = queue.Queue()
    with ThreadedServer(echo_server, tls=server_ctx) as ts:
        client = new_client(ts, tls=client_ctx)
        client.handle(ReplyV1, lambda _s, m: got.put(m.payload.message))
        with client:
            assert client.path == "/wss"
            for i in range(50):
                client.send(Message(MessageV1(message=f"tls{i}")))
            assert [got.get(timeout=WAIT) for _ in range(50)] == [f"tls{i}" for i in range(50)]
            big = "x" * 200_000
            reply = client.send_sync(Message(MessageV1(message=big)), timeout=WAIT)
            assert reply.payload.message == big
        assert client.status is Status.CLOSED


def test_server_that_never_answers_pings_is_dropped_after_ping_timeout() -> None:
    import re
    import socket

    from goomerang_proto.handshake import accept_token

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)

    def mute_server() -> None:
        conn, _ = listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            match = re.search(rb"Sec-WebSocket-Key: (\S+)", head)
            assert match is not None
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept_token(match.group(1).decode()).encode()
                + b"\r\n\r\n"
            )
            conn.settimeout(WAIT)
            try:
                while conn.recv(4096):  # reads pings, never answers
                    pass
            except OSError:
                pass

    thread = threading.Thread(target=mute_server, daemon=True)
    thread.start()
    errors: queue.Queue[BaseException] = queue.Queue()
    closed = threading.Event()
    port = listener.getsockname()[1]
    client = Client(
        f"127.0.0.1:{port}",
        heartbeat_interval=0.05,
        ping_timeout=0.2,
        on_error=errors.put,
        on_close=closed.set,
    )
    client.connect()
    assert closed.wait(WAIT)
    first = errors.get(timeout=WAIT)
    assert isinstance(first, ConnectionLost) and "did not answer pings" in str(first)
    assert client.status is Status.CLOSED
    with pytest.raises(NotRunning):
        client.send(Message(MessageV1(message="x")))
    thread.join(WAIT)
    listener.close()


def test_pipelined_sends_and_echoes_all_arrive_in_order() -> None:
    """More echoes than the handler queue holds: reading pauses and resumes, nothing is lost."""
    count = 5000
    got: list[str] = []
    done = threading.Event()

    def on_reply(_sender: Any, message: Message[Any]) -> None:
        got.append(message.payload.message)
        if len(got) == count:
            done.set()

    with ThreadedServer(echo_server) as ts:
        client = new_client(ts)
        client.handle(ReplyV1, on_reply)
        with client:
            for i in range(count):
                client.send(Message(MessageV1(message=str(i))))
            assert done.wait(WAIT * 2), f"{len(got)} of {count} echoes arrived"
    assert got == [str(i) for i in range(count)]
