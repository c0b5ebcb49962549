"""Raw-socket WebSocket peers for the hostile, auth and limit tests (asyncio streams)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterable

from goomerang_proto.frames import (
    OP_CLOSE,
    FrameError,
    FrameReader,
    build_frame,
    parse_close_payload,
)

WAIT = 5.0


def upgrade_request(host: str, path: str = "/ws", headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """A valid upgrade request (plus ``headers``)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


async def http_exchange(addr: str, request: bytes, timeout: float = WAIT) -> tuple[int, bytes]:
    """Send ``request``; return the response status and everything read until EOF/head end."""
    host, port = split_addr(addr)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, head
    finally:
        writer.transport.abort()


class RawPeer:
    """A WebSocket client on a raw stream: sends whatever bytes a test wants."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._frames = FrameReader(expect_masked=False, max_message_size=1 << 30)

    @classmethod
    async def connect(
        cls, addr: str, headers: Iterable[tuple[str, str]] = (), timeout: float = WAIT
    ) -> RawPeer:
        """Open a TCP connection and complete the upgrade (101 expected)."""
        host, port = split_addr(addr)
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(upgrade_request(addr, headers=headers))
            head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            writer.transport.abort()
            raise AssertionError(f"upgrade refused: {head!r}")
        return cls(reader, writer)

    def send_frame(
        self, opcode: int, payload: bytes, *, mask: bool = True, fin: bool = True
    ) -> None:
        """Write one frame."""
        self.writer.write(build_frame(opcode, payload, mask=mask, fin=fin))

    def send_raw(self, data: bytes) -> None:
        """Write raw bytes."""
        self.writer.write(data)

    async def next_frames(self, timeout: float = WAIT) -> list[tuple[int, bytes]]:
        """Frames from the server until at least one arrives; [] at EOF."""
        out: list[tuple[int, bytes]] = []
        async with asyncio.timeout(timeout):
            while not out:
                data = await self.reader.read(65536)
                if not data:
                    return out
                try:
                    self._frames.feed(data, out)
                except FrameError as exc:  # pragma: no cover - the server sent garbage
                    raise AssertionError(f"server sent a bad frame: {exc}") from exc
        return out

    async def close_code(self, timeout: float = WAIT) -> int | None:
        """Read until the server's Close frame; its code (None at EOF without one)."""
        async with asyncio.timeout(timeout):
            while True:
                frames = await self.next_frames(timeout)
                if not frames:
                    return None
                for opcode, payload in frames:
                    if opcode == OP_CLOSE:
                        return parse_close_payload(payload)[0]

    async def eof(self, timeout: float = WAIT) -> bool:
        """True once the server closed the TCP connection (reads everything until then)."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    data = await self.reader.read(65536)
                except ConnectionError:
                    return True
                if not data:
                    return True

    def abort(self) -> None:
        """Drop the connection."""
        self.writer.transport.abort()
