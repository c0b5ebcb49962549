"""The embedded backplane's wire.

A stream of ``goomerang.backplane.Envelope`` messages, each prefixed by its
length as a 4-byte big-endian unsigned integer.
"""

from __future__ import annotations

import struct

from .base import (
    BackplaneProtocolError,
)

__all__ = ["DEFAULT_MAX_ENVELOPE", "EnvelopeStream", "frame_envelope"]

DEFAULT_MAX_ENVELOPE = 64 * 1024 * 1024


_HEADER = struct.Struct(">I")


def frame_envelope(payload: bytes) -> bytes:
    """Prefix one serialized envelope with its 4-byte big-endian length."""
    return _HEADER.pack(len(payload)) + payload


class EnvelopeStream:
    """Splits a byte stream into length-prefixed envelope payloads (a sans-IO parser).

    ``feed(data)`` returns the complete payloads found so far, in order,
    whatever the chunking. A length above ``max_size`` raises
    ``BackplaneProtocolError`` before the payload is buffered; after an
    error the stream is unusable (the caller drops the connection).
    """

    __slots__ = ("_buf", "_failed", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_ENVELOPE) -> None:
        self._buf = bytearray()
        self._failed = False
        self.max_size = max_size

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a complete payload."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every payload now complete."""
        if self._failed:
            raise BackplaneProtocolError("envelope stream already failed")
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (size,) = _HEADER.unpack_from(buf, pos)
            if size > self.max_size:
                self._failed = True
                raise BackplaneProtocolError(
                    f"backplane envelope of {size} bytes exceeds the limit of {self.max_size}"
                )
            if end - pos - 4 < size:
                break
            out.append(bytes(buf[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        if pos:
            del buf[:pos]
        return out
