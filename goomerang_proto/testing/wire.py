"""Wire-level helpers for checking a peer byte by byte (no IO): upgrade requests, frames.

* :func:`upgrade_request` builds an RFC 6455 section 4.1 opening handshake,
  with any header left out, changed or repeated (for bad-request cases);
* :func:`parse_http_head` reads an HTTP response head;
* :func:`parse_frame` cuts one WebSocket frame off a buffer exactly as sent:
  FIN, RSV bits, opcode, whether it was masked, the unmasked payload and the
  raw bytes, so a checker can tell "one unfragmented binary frame, unmasked"
  (``0x82``) from anything else, which the engine's reassembling reader hides.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from ..frames import unmask
from ..handshake import accept_token

DEFAULT_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
"""The sample Sec-WebSocket-Key of RFC 6455 section 1.3 (its accept token is known)."""


def new_key(seed: bytes) -> str:
    """A valid Sec-WebSocket-Key (base64 of 16 bytes) derived from ``seed``."""
    return base64.b64encode((seed * 16)[:16].ljust(16, b"\0")).decode("ascii")


def upgrade_request(
    host: str,
    path: str = "/ws",
    *,
    key: str = DEFAULT_KEY,
    method: str = "GET",
    version: str | None = "13",
    omit: tuple[str, ...] = (),
    headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """An opening handshake (RFC 6455 section 4.1) as bytes.

    ``omit`` drops standard headers by name (case-insensitive); ``version``
    None drops Sec-WebSocket-Version; ``headers`` are appended as given (a
    second ``Sec-WebSocket-Key`` makes a duplicate).
    """
    standard = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
    ]
    if version is not None:
        standard.append(("Sec-WebSocket-Version", version))
    dropped = {name.lower() for name in omit}
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in standard if k.lower() not in dropped]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def expected_accept(key: str = DEFAULT_KEY) -> str:
    """The Sec-WebSocket-Accept a server must answer ``key`` with (RFC 6455 section 4.2.2)."""
    return accept_token(key)


@dataclass(frozen=True)
class HttpHead:
    """An HTTP response head: status, reason, headers (names as sent), its raw bytes."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    raw: bytes

    def get(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]


def parse_http_head(data: bytes) -> HttpHead | None:
    """Parse the head at the start of ``data`` (up to the blank line); None while incomplete.

    ValueError when the status line is not ``HTTP/1.x NNN reason``.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    raw = data[: end + 4]
    lines = raw[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response status line: {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return HttpHead(int(parts[1]), parts[2] if len(parts) > 2 else "", tuple(headers), raw)


@dataclass(frozen=True)
class RawFrame:
    """One WebSocket frame as it was on the wire (RFC 6455 section 5.2)."""

    fin: bool
    rsv: int
    """RSV1-3 as a 3-bit number (0 without extensions)."""
    opcode: int
    masked: bool
    payload: bytes
    """The payload, unmasked."""
    raw: bytes
    """The frame's bytes as received."""


def parse_frame(buf: bytes | bytearray, max_length: int = 1 << 30) -> tuple[RawFrame, int] | None:
    """Cut one frame off the start of ``buf``: (frame, bytes used), or None while incomplete.

    Every byte sequence is a frame header, so nothing here fails on bad
    frames; only a declared length above ``max_length`` raises ValueError.
    """
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    masked = bool(b1 & 0x80)
    length = b1 & 0x7F
    pos = 2
    if length == 126:
        if len(buf) < 4:
            return None
        length = int.from_bytes(buf[2:4], "big")
        pos = 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length = int.from_bytes(buf[2:10], "big")
        pos = 10
    if length > max_length:
        raise ValueError(f"frame declares {length} bytes (limit {max_length})")
    key = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        key = bytes(buf[pos : pos + 4])
        pos += 4
    if len(buf) < pos + length:
        return None
    body = bytes(buf[pos : pos + length])
    payload = unmask(body, key) if masked else body
    frame = RawFrame(
        fin=bool(b0 & 0x80),
        rsv=(b0 >> 4) & 0x7,
        opcode=b0 & 0x0F,
        masked=masked,
        payload=payload,
        raw=bytes(buf[: pos + length]),
    )
    return frame, pos + length


__all__ = [
    "DEFAULT_KEY",
    "HttpHead",
    "RawFrame",
    "expected_accept",
    "new_key",
    "parse_frame",
    "parse_http_head",
    "upgrade_request",
]
