"""Misbehaving peers on raw sockets, the child server, and the runtimes the suite runs against.

Runtimes. ``SERVER_RUNTIMES`` names what ``misbehave_child.py`` can serve
with; ``CLIENT_DRIVERS`` maps a name to a :class:`ClientDriver`. A new
adapter (the blocking client, a trio server) joins every case by adding one
entry to either.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from goomerang_proto import Message, Status
from goomerang_proto.codec import pack
from goomerang_proto.frames import OP_BINARY, OP_CLOSE, OP_PING, build_frame
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
SERVER_RUNTIMES = ("asyncio", "uvloop", "trio")
TLS_RUNTIMES = ("asyncio", "uvloop")  # the trio server documents no TLS, no authenticate
MASK = b"\x11\x22\x33\x44"


# ---------------------------------------------------------------- child server
def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB, from /proc (HWM: the peak since start)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


class ChildServer:
    """``misbehave_child.py`` in a child process."""

    def __init__(self, runtime: str, **config: Any) -> None:
        self.runtime = runtime
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "misbehave_child.py"),
                json.dumps({"runtime": runtime, **config}),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip().isdigit(), f"child server did not start: {line!r}"
        self.port = int(line)
        self.addr = f"127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        out: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return out

    def rss(self) -> tuple[int, int]:
        return rss_kb(self.proc.pid)

    def reset_peak(self) -> int:
        """Reset the child's peak RSS (VmHWM) to its current RSS; return that RSS in KiB."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        return self.rss()[0]

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ChildServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------ raw peers
def upgrade_request(port: int, extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def raw_socket(port: int, rcvbuf: int = 4096) -> socket.socket:
    """A connected TCP socket with a small receive buffer (a slow or stalled reader)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5.0)
    sock.connect(("127.0.0.1", port))
    return sock


def read_head(sock: socket.socket) -> bytes:
    """Read an HTTP response head (up to the blank line)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def upgraded(port: int, rcvbuf: int = 4096) -> socket.socket:
    sock = raw_socket(port, rcvbuf)
    sock.sendall(upgrade_request(port))
    head = read_head(sock)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def masked(opcode: int, payload: bytes) -> bytes:
    return build_frame(opcode, payload, mask=True, mask_key=MASK)


def ping_chunk(size: int = 64 * 1024) -> bytes:
    """About ``size`` bytes of 125-byte masked Pings."""
    one = masked(OP_PING, b"p" * 125)
    return one * (size // len(one))


def request_chunk(text_size: int = 1000, size: int = 64 * 1024, sync: bool = True) -> bytes:
    """About ``size`` bytes of masked sync requests (or plain messages) of ``text_size``."""
    envelope = pack(Message(MessageV1(message="r" * text_size)), uuid="u" * 36, is_sync=sync)
    one = masked(OP_BINARY, envelope)
    return one * max(1, size // len(one))


@dataclass
class PushResult:
    sent: int = 0
    stalled: bool = False
    """The peer stopped taking our bytes for ``stall_after`` s (it paused reading)."""
    closed: bool = False
    """The peer closed or reset the connection."""
    seconds: float = 0.0


def push(
    sock: socket.socket,
    chunk: bytes,
    total: int,
    *,
    stall_after: float = 0.5,
    budget: float = 15.0,
) -> PushResult:
    """Send ``chunk`` repeatedly until ``total`` bytes went out, the peer stalls, or it closes.

    A stall is ``stall_after`` seconds without the peer taking a byte (it paused
    reading); ``budget`` bounds the whole push in time.
    """
    result = PushResult()
    sock.settimeout(stall_after)
    t0 = time.monotonic()
    view = memoryview(chunk)
    try:
        while result.sent < total and time.monotonic() - t0 < budget:
            n = sock.send(view)
            result.sent += n
            view = view[n:] if n < len(view) else memoryview(chunk)
    except TimeoutError:
        result.stalled = True
    except OSError:
        result.closed = True
    result.seconds = time.monotonic() - t0
    return result


def wait_closed(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the peer ends the connection (EOF or reset), reading and dropping data."""
    t0 = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - t0 < timeout:
        try:
            if not sock.recv(1 << 20):
                return time.monotonic() - t0
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1; returns (cert, key) PEM paths."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

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
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def tls_client_hello_half(port: int) -> bytes:
    """The first half of a real ClientHello (captured from an SSLObject)."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    return hello[: len(hello) // 2]


# -------------------------------------------------------------- healthy client
@dataclass
class Healthy:
    """A well-behaved asyncio client doing sync requests on the same server meanwhile."""

    addr: str
    sent: int = 0
    answered: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Healthy:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10.0), "healthy client did not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(15.0)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from goomerang_io import Client
        from goomerang_proto.pb.goomerang_example_pb2 import ReplyV1

        client = Client(self.addr, on_error=[lambda e: self.errors.append(repr(e))])
        client.register_message(ReplyV1)
        await client.connect()
        self._ready.set()
        try:
            while not self._stop.is_set() or self.sent < 3:  # each request is awaited
                text = f"healthy {self.sent}"
                self.sent += 1
                reply = await client.send_sync(Message(MessageV1(message=text)), timeout=5.0)
                if reply.payload.message == text:
                    self.answered += 1
        except Exception as exc:
            self.errors.append(repr(exc))
        finally:
            await client.close()


# -------------------------------------------------------- stalled raw servers
def answer_upgrade(sock: socket.socket, before_answer: Callable[[], None] = lambda: None) -> None:
    """Read an upgrade request on ``sock`` and answer 101; ``before_answer`` runs between."""
    from goomerang_proto.handshake import accept_token

    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    before_answer()
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
        + accept_token(key.decode()).encode()
        + b"\r\n\r\n"
    )


class RawServer:
    """A one-connection raw WebSocket server: answers the upgrade, then runs ``behave(sock)``."""

    def __init__(self, behave: Callable[[socket.socket, threading.Event], None]) -> None:
        self.done = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.behave = behave
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        sock, _ = self.listener.accept()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with sock:
            sock.settimeout(5.0)
            answer_upgrade(sock)
            self.behave(sock, self.done)

    def close(self) -> None:
        self.done.set()
        self.listener.close()
        self.thread.join(10.0)


def stall(sock: socket.socket, done: threading.Event) -> None:
    """Never read again; keep the socket open until the test is done (10 s at most)."""
    done.wait(10.0)


def echo(sender: Any, message: Message[Any]) -> None:
    """The README echo handler: a plain function, ``sender.send`` without await."""
    sender.send(Message(message.payload, message.headers))


def server_ping_flood(
    total: int, sent: list[int]
) -> Callable[[socket.socket, threading.Event], None]:
    """Push ``total`` bytes of server Pings (125-byte payloads), never read, then end TCP."""
    return server_flood(build_frame(OP_PING, b"p" * 125), total, sent)


def server_flood(
    one: bytes, total: int, sent: list[int]
) -> Callable[[socket.socket, threading.Event], None]:
    """Push ``total`` bytes of the server frame ``one``, never read, then end TCP (also
    when the client stops taking bytes for 5 s)."""
    chunk = one * max(1, 64 * 1024 // len(one))

    def behave(sock: socket.socket, done: threading.Event) -> None:
        sock.settimeout(5.0)
        try:
            while sent[0] < total and not done.is_set():
                sent[0] += sock.send(chunk)
        except OSError:
            pass

    return behave


def empty_close_then_wait(sock: socket.socket, done: threading.Event) -> None:
    """Send a Close frame with no status (the client sees 1005), read its answer, end TCP."""
    sock.sendall(build_frame(OP_CLOSE, b""))
    wait_closed_or_answer(sock)


def wait_closed_or_answer(sock: socket.socket) -> None:
    sock.settimeout(5.0)
    try:
        sock.recv(4096)
    except OSError:
        pass


# -------------------------------------------------------------- client drivers
SEND_WAYS = ("send", "publish", "broadcast")
"""The ways a client sends one message on its own (each waits above write_limit)."""


def send_way(client: Any, how: str) -> Callable[[Message[Any]], Any]:
    """``client``'s ``send``, ``publish`` to topic "t" or ``broadcast`` (any runtime)."""
    if how == "publish":
        return lambda message: client.publish("t", message)
    return getattr(client, how)  # type: ignore[no-any-return]


class CloseWatch:
    """What a client reports while a server closes it: its errors (repr), its statuses
    (names, in order) and ``closed``, an Event of the client's runtime set at CLOSED."""

    def __init__(self, closed: Any) -> None:
        self.errors: list[str] = []
        self.statuses: list[str] = []
        self.closed = closed

    def on_error(self, exc: BaseException) -> None:
        self.errors.append(repr(exc))

    def on_status(self, status: Status) -> None:
        self.statuses.append(status.name)
        if status is Status.CLOSED:
            self.closed.set()

    def result(self, code: int | None) -> dict[str, Any]:
        return {"errors": self.errors, "statuses": self.statuses, "code": code}


class ClientDriver(Protocol):
    """How the suite drives one client runtime (asyncio today; the blocking client next)."""

    def send_until_stuck(
        self, addr: str, count: int, size: int, options: dict[str, Any], how: str = "send"
    ) -> dict[str, Any]:
        """Send ``count`` messages of ``size`` to a server that never reads, with the
        client's ``how`` (``send``, ``publish`` to topic "t", or ``broadcast``).

        Returns ``returned`` (sends that came back), ``error`` (the first
        error reported, or None), ``error_after`` (s), ``rss_growth_kb``.
        """
        ...

    def close_against_stalled(self, addr: str, options: dict[str, Any]) -> dict[str, Any]:
        """Connect, fill the pipe a little, close(); returns ``seconds`` close() took."""
        ...

    def clean_close_from_server(self, addr: str) -> dict[str, Any]:
        """Connect and wait until the server closed; returns ``errors`` and ``statuses``."""
        ...

    def until_closed(self, addr: str) -> dict[str, Any]:
        """Connect (no heartbeat) and stay until the server ends the connection.

        Returns ``rss_growth_kb`` (peak RSS of this process during it) and ``status``.
        """
        ...
