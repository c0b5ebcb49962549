"""A raw WebSocket client on a blocking socket: sends any bytes, reads frames as sent.

Every read has a deadline (``timeout`` seconds, default 3); nothing here
sleeps. Used by the conformance cases; it never raises on what the server
sends, only :class:`PeerTimeout` when nothing (or not enough) arrives in time.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from goomerang_proto import codec
from goomerang_proto import frames as fr
from goomerang_proto.message import Message
from goomerang_proto.pb import goomerang_frame_pb2 as pb
from goomerang_proto.testing.wire import (
    HttpHead,
    RawFrame,
    new_key,
    parse_frame,
    parse_http_head,
    upgrade_request,
)

DEFAULT_TIMEOUT = 3.0


class PeerTimeout(Exception):
    """Nothing (or not enough) arrived before the deadline."""


class PeerClosed(Exception):
    """The server closed the TCP connection."""


class RawPeer:
    """One TCP connection to the server under test."""

    def __init__(self, host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.head: HttpHead | None = None
        self.key = new_key(os.urandom(16))

    @property
    def host_header(self) -> str:
        """The Host header value for this server."""
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------------ IO
    def send(self, data: bytes) -> None:
        """Write ``data`` whole (PeerClosed when the server is gone)."""
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise PeerClosed(f"write failed: {exc}") from exc

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PeerTimeout("deadline passed")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError as exc:
            raise PeerTimeout("nothing arrived in time") from exc
        except OSError as exc:  # reset by peer
            self.eof = True
            raise PeerClosed(f"connection reset: {exc}") from exc
        if not data:
            self.eof = True
            raise PeerClosed("server closed the TCP connection")
        self.buf += data

    def read_head(self, timeout: float | None = None) -> HttpHead:
        """Read the HTTP response head (PeerTimeout / PeerClosed / ValueError)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            head = parse_http_head(bytes(self.buf))
            if head is not None:
                del self.buf[: len(head.raw)]
                self.head = head
                return head
            self._fill(deadline)

    def read_frame(self, timeout: float | None = None) -> RawFrame:
        """Read one frame as sent (PeerTimeout / PeerClosed)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            got = parse_frame(self.buf)
            if got is not None:
                frame, used = got
                del self.buf[:used]
                return frame
            self._fill(deadline)

    def read_until_eof(self, timeout: float | None = None) -> bool:
        """Drain until the server closes TCP; True when it did before the deadline."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not self.eof:
            try:
                self._fill(deadline)
            except PeerTimeout:
                return False
            except PeerClosed:
                return True
            self.buf.clear()
        return True

    def close(self) -> None:
        """Drop the TCP connection."""
        try:
            self.sock.close()
        except OSError:  # pragma: no cover - close never fails on a plain socket
            pass

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------ WebSocket level
    def upgrade(self, path: str = "/ws") -> HttpHead:
        """Send a valid upgrade request; return the response head (any status)."""
        self.send(upgrade_request(self.host_header, path, key=self.key))
        return self.read_head()

    def send_frame(
        self, opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True
    ) -> None:
        """Send one frame (masked with a random key, as a client must)."""
        self.send(fr.build_frame(opcode, payload, mask=masked, mask_key=os.urandom(4), fin=fin))

    def send_envelope(self, envelope: bytes) -> None:
        """Send Frame bytes as one binary message."""
        self.send_frame(fr.OP_BINARY, envelope)

    def send_message(
        self, message: Message[Any], *, uuid: str = "", creation_ns: int | None = None
    ) -> None:
        """Pack and send ``message`` (a sync request when ``uuid`` is set)."""
        ns = creation_ns if creation_ns is not None else time.time_ns()
        self.send_envelope(codec.pack(message, uuid=uuid, is_sync=bool(uuid), creation_ns=ns))

    def next_data(self, timeout: float | None = None) -> tuple[RawFrame, list[RawFrame]]:
        """The next data frame, with the control frames read before it."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        controls: list[RawFrame] = []
        while True:
            frame = self.read_frame(max(0.001, deadline - time.monotonic()))
            if frame.opcode in (fr.OP_PING, fr.OP_PONG, fr.OP_CLOSE):
                controls.append(frame)
                if frame.opcode == fr.OP_CLOSE:
                    raise PeerClosed(f"server sent Close {frame.payload.hex()}")
                continue
            return frame, controls

    def next_envelope(self, timeout: float | None = None) -> tuple[RawFrame, pb.Frame]:
        """The next binary message, decoded as a goomerang Frame (ValueError if it is not)."""
        frame, _ = self.next_data(timeout)
        try:
            envelope = pb.Frame.FromString(frame.payload)
        except Exception as exc:
            raise ValueError(f"not a goomerang Frame: {frame.payload[:64].hex()}") from exc
        return frame, envelope

    def wait_close(self, timeout: float | None = None) -> RawFrame | None:
        """Read until a Close frame (returned) or EOF/timeout (None); data frames are skipped."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            try:
                frame = self.read_frame(max(0.001, deadline - time.monotonic()))
            except (PeerTimeout, PeerClosed):
                return None
            if frame.opcode == fr.OP_CLOSE:
                return frame


def connect(host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT) -> RawPeer:
    """A RawPeer whose upgrade succeeded (AssertionError with the head otherwise)."""
    peer = RawPeer(host, port, timeout=timeout)
    head = peer.upgrade()
    if head.status != 101:
        peer.close()
        raise AssertionError(f"upgrade answered {head.status} {head.reason}")
    return peer
