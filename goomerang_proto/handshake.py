"""HTTP/1.1 upgrade helpers shared by both sides (RFC 6455 section 4)."""

from __future__ import annotations

import base64
import binascii
import hashlib

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_token(key: str | bytes) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key``."""
    raw = key.encode("ascii") if isinstance(key, str) else key
    return base64.b64encode(hashlib.sha1(raw.strip() + _GUID).digest()).decode("ascii")


def valid_key(key: str) -> bool:
    """A ``Sec-WebSocket-Key`` must be base64 of 16 bytes."""
    try:
        return len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
    except (binascii.Error, UnicodeEncodeError):
        return False


def header_tokens(headers: list[tuple[bytes, bytes]], name: bytes) -> set[str]:
    """Lower-cased comma-separated tokens of every header named ``name``."""
    tokens: set[str] = set()
    for key, value in headers:
        if key.lower() == name:
            for part in value.split(b","):
                part = part.strip()
                if part:
                    tokens.add(part.decode("latin-1").lower())
    return tokens


def header_value(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of header ``name`` (already lower-case in h11), or None."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def decode_headers(headers: list[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    """Headers as (lower-case name, value) strings."""
    return tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers)


def split_target(target: str) -> tuple[str, str]:
    """Split a request target into (path, query).

    The absolute form (``http://host/ws?x``) is accepted as RFC 9112 section
    3.2.2 requires of a server: its path (``/`` when empty) and query are used.
    """
    lower = target[:8].lower()
    if lower.startswith(("http://", "https://")):
        rest = target.split("//", 1)[1]
        slash = rest.find("/")
        mark = rest.find("?")
        if slash < 0 or (0 <= mark < slash):
            target = "/" + (rest[mark:] if mark >= 0 else "")
        else:
            target = rest[slash:]
    path, _, query = target.partition("?")
    return path, query
