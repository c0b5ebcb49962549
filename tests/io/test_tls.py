"""TLS: a certificate generated in the test, the /wss path, round trips and refusals."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from util import WAIT, Inbox, connected, echo, msg, new_server, recorder_handler, run, running

from goomerang_io import Client, TLSError
from goomerang_proto import GoomerangError, HandshakeError, NotRunning, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / "cert.pem"
    key_path = tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting the generated certificate)."""
    cert, key = make_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    return server_ctx, client_ctx


def test_tls_round_trip_on_wss(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = contexts

    async def main() -> None:
        server = new_server(tls=server_ctx)
        server.handle(MessageV1, echo)
        got = Inbox()
        async with running(server):
            assert server.url == f"wss://127.0.0.1:{server.port}/wss"
            client = Client(server.addr, tls=client_ctx, heartbeat_interval=None)
            assert client.path == "/wss"
            client.handle(ReplyV1, recorder_handler(got))
            async with connected(client):
                await client.send(msg("over tls", {"k": "v"}))
                (m,) = await got.wait_count(1)
                assert m.payload == ReplyV1(message="over tls") and m.headers == {"k": "v"}
                sync = await client.send_sync(msg("sync over tls"), timeout=WAIT)
                assert sync.payload == ReplyV1(message="sync over tls") and sync.is_sync
            assert client.status is Status.CLOSED
            assert client.close_code == 1000

    run(main())


def test_tls_with_localhost_server_hostname(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, client_ctx = contexts

    async def main() -> None:
        server = new_server(tls=server_ctx)
        server.handle(MessageV1, echo)
        async with running(server):
            client = Client(
                server.addr, tls=client_ctx, server_hostname="localhost", heartbeat_interval=None
            )
            client.register_message(ReplyV1)
            async with connected(client):
                got = await client.send_sync(msg("sni"), timeout=WAIT)
                assert got.payload == ReplyV1(message="sni")

    run(main())


def test_tls_server_shutdown_closes_clients_with_1000(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, client_ctx = contexts

    async def main() -> None:
        server = new_server(tls=server_ctx)
        statuses = Inbox()
        async with running(server):
            client = Client(
                server.addr, tls=client_ctx, heartbeat_interval=None, on_status_change=statuses
            )
            await asyncio.wait_for(client.connect(), WAIT)
            await asyncio.wait_for(server.shutdown(), WAIT)
            await statuses.wait_for(lambda s: s is Status.CLOSED)
        assert client.close_code == 1000

    run(main())


def test_client_that_does_not_trust_the_certificate_fails(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, _client_ctx = contexts

    async def main() -> None:
        server = new_server(tls=server_ctx, handshake_timeout=2.0)
        async with running(server):
            client = Client(server.addr, tls=ssl.create_default_context(), heartbeat_interval=None)
            with pytest.raises(TLSError) as info:
                await asyncio.wait_for(client.connect(), WAIT)
            assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
            assert "certificate verification failed" in str(info.value)
            assert client.status is Status.NEW
            with pytest.raises(NotRunning):
                await client.send(msg())
            assert server.connections() == 0

    run(main())


def test_plain_ws_path_is_not_served_over_tls(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, client_ctx = contexts

    async def main() -> None:
        server = new_server(tls=server_ctx)
        async with running(server):
            client = Client(server.addr, tls=client_ctx, path="/ws", heartbeat_interval=None)
            with pytest.raises(GoomerangError) as info:
                await asyncio.wait_for(client.connect(), WAIT)
            assert isinstance(info.value, HandshakeError)
            assert info.value.status == 404
            assert server.connections() == 0

    run(main())
