"""RFC 6455 frame codec, written for speed: one tight loop over a read buffer.

:class:`FrameReader` turns bytes into complete messages and control frames
as ``(opcode, payload)`` tuples; fragmented messages are reassembled,
control frames may arrive between fragments, the message size limit is
checked from the frame header before any payload is buffered, and masks are
removed one whole payload at a time: by the C accelerator ``_mask`` where the
compiled build installed it (``make compiled``), else with a single integer
XOR (pure Python; both give the same bytes, tests/proto/test_mask_accel.py). A protocol
violation raises :class:`FrameError` carrying the close code to answer with
(1002 protocol error, 1007 invalid UTF-8, 1009 too big); everything parsed
before the violation has already been appended to the output list.

:func:`build_frame` writes one unfragmented frame (masked for clients).
wsproto is the oracle for this module: the test suite feeds both the same
arbitrary bytes and requires the same results.
"""

from __future__ import annotations

import codecs
import os
import struct
from collections.abc import Callable
from typing import Final

_c_unmask_at: Callable[[bytes | bytearray | memoryview, int, int], bytes] | None
_c_mask: Callable[[bytes | bytearray | memoryview, bytes | bytearray | memoryview], bytes] | None
try:
    from ._mask import mask as _c_mask
    from ._mask import unmask_at as _c_unmask_at
except ImportError:  # a pure-Python install: the big-integer XOR below does it
    _c_unmask_at = _c_mask = None
# What the per-message paths call: Final, so compiled code holds them in C statics
# (a plain module global is a dict lookup per use there).
_UNMASK_AT: Final = _c_unmask_at
_MASK: Final = _c_mask

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013

#: Close codes from the peer that end a connection cleanly: normal closure, going away
#: and a Close frame without a status (RFC 6455 7.1.5 and 7.4.1). Clients report any
#: other code, and a connection lost without a Close (1006), as an error.
CLEAN_CLOSE_CODES = frozenset({1000, 1001, 1005})

_DATA_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY})
_CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})
# Codes a peer may put on the wire (RFC 6455 7.4, IANA registry); 1005, 1006
# and 1015 are local-only, 1004 is reserved, 1016-2999 are unassigned.
# 1012-1014 (service restart, try again later, bad gateway) are IANA-registered.
_VALID_WIRE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

_U16: Final = struct.Struct("!H")
_U64: Final = struct.Struct("!Q")
_HEAD16: Final = struct.Struct("!BBH").pack


class FrameError(Exception):
    """A WebSocket framing violation by the peer; ``code`` is the close code to send."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} (close code {code})")
        self.code = code
        self.reason = reason


def valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a Close frame on the wire."""
    return code in _VALID_WIRE_CODES or 3000 <= code <= 4999


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """Return (code, reason) of a Close frame body; 1005 when the body is empty.

    Raises FrameError(1002) for a 1-byte body or an invalid code, and
    FrameError(1007) for a reason that is not UTF-8.
    """
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte body")
    code = (payload[0] << 8) | payload[1]
    if not valid_close_code(code):
        raise FrameError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = bytes(payload[2:]).decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(CLOSE_INVALID_DATA, "close reason is not valid UTF-8") from None
    return code, reason


def close_payload(code: int, reason: str = "") -> bytes:
    """The body of a Close frame for ``code`` (empty for 1005) and ``reason``."""
    if code == CLOSE_NO_STATUS:
        return b""
    data = _U16.pack(code) + reason.encode("utf-8")
    return data[:125]


# _REPEAT[q] has a 1 in the low bit of each of q 32-bit words: k * _REPEAT[q]
# is the 32-bit masking key k repeated q times, as one integer.
_REPEAT: Final = [((1 << (32 * q)) - 1) // 0xFFFFFFFF for q in range(257)]
_from_bytes: Final = int.from_bytes


def _repeat(q: int) -> int:
    return _REPEAT[q] if q <= 256 else ((1 << (32 * q)) - 1) // 0xFFFFFFFF


def unmask(payload: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte masking ``key`` (C, or one big-integer XOR).

    Raises ValueError when ``key`` is not 4 bytes (both builds).
    """
    if _MASK is not None:
        return _MASK(payload, key)
    if len(key) != 4:
        raise ValueError(f"mask: the key must be 4 bytes, not {len(key)}")
    length = len(payload)
    if not length:
        return b""
    q = (length + 3) >> 2
    value = _from_bytes(payload, "little") ^ (_from_bytes(key, "little") * _repeat(q))
    return value.to_bytes(q << 2, "little")[:length]


def frame_header(opcode: int, length: int, *, fin: bool = True, masked: bool = False) -> bytes:
    """The header bytes (without masking key) of a frame."""
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if masked else 0
    if length < 126:
        return bytes((b0, m | length))
    if length < 0x10000:
        return bytes((b0, m | 126)) + _U16.pack(length)
    return bytes((b0, m | 127)) + _U64.pack(length)


def binary_header(length: int) -> bytes:
    """The header of an unmasked, final binary frame of ``length`` bytes (server to client)."""
    if length < 126:
        return bytes((0x82, length))
    if length < 0x10000:
        return _HEAD16(0x82, 126, length)
    return b"\x82\x7f" + _U64.pack(length)


def masked_binary(payload: bytes, key: bytes) -> bytes:
    """A final binary frame of ``payload`` masked with the 4-byte ``key`` (client to server)."""
    length = len(payload)
    if length < 126:
        head = bytes((0x82, 0x80 | length))
    elif length < 0x10000:
        head = _HEAD16(0x82, 0xFE, length)
    else:
        head = b"\x82\xff" + _U64.pack(length)
    if not length:
        return head + key
    if _MASK is not None:
        return head + key + _MASK(payload, key)
    q = (length + 3) >> 2
    value = _from_bytes(payload, "little") ^ (
        _from_bytes(key, "little") * (_REPEAT[q] if q <= 256 else _repeat(q))
    )
    return head + key + value.to_bytes(q << 2, "little")[:length]


# Bumped in a forked child: pools drawn before a fork are not used after it,
# so parent and child never send the same keys.
_fork_generation = [0]


def _forked() -> None:
    _fork_generation[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class MaskKeys:
    """Masking keys for one client connection, drawn from ``os.urandom`` 1 KiB at a time.

    RFC 6455 asks for unpredictable keys from a strong entropy source; taking
    them from one urandom read of 256 keys costs one system call per 256
    frames instead of one per frame. A pool drawn before ``os.fork()`` is
    dropped in the child. Not shared between threads.
    """

    __slots__ = ("_generation", "_pool", "_pos")

    def __init__(self) -> None:
        self._pool = b""
        self._pos = 0
        self._generation = _fork_generation[0]

    def next(self) -> bytes:
        """The next 4-byte key."""
        pos = self._pos
        if pos >= len(self._pool) or self._generation != _fork_generation[0]:
            self._pool = os.urandom(1024)
            self._generation = _fork_generation[0]
            pos = 0
        self._pos = pos + 4
        return self._pool[pos : pos + 4]


def build_frame(
    opcode: int,
    payload: bytes,
    *,
    mask: bool = False,
    mask_key: bytes | None = None,
    fin: bool = True,
) -> bytes:
    """One frame: unmasked (server to client) or masked with a random key (client to server)."""
    length = len(payload)
    if not mask:
        b0 = (0x80 if fin else 0) | opcode
        if length < 126:
            return bytes((b0, length)) + payload
        if length < 0x10000:
            return _HEAD16(b0, 126, length) + payload
        return frame_header(opcode, length, fin=fin) + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return frame_header(opcode, length, fin=fin, masked=True) + key + unmask(payload, key)


class FrameReader:
    """Incremental frame parser for one direction of one connection.

    ``expect_masked`` is True on the server side (client frames must be
    masked) and False on the client side (server frames must not be).
    """

    __slots__ = (
        "_buf",
        "_expect_masked",
        "_frag_buf",
        "_frag_opcode",
        "_frag_size",
        "_utf8",
        "_utf8_fed",
        "failed",
        "max_message_size",
    )

    def __init__(self, *, expect_masked: bool, max_message_size: int = 1 << 20) -> None:
        self._buf = bytearray()
        self._expect_masked = 0x80 if expect_masked else 0
        self.max_message_size = max_message_size
        self._frag_opcode = -1
        # one buffer, not a list of parts: a list grows by a pointer and an object per
        # fragment, so endless empty or tiny fragments would grow memory without bound
        self._frag_buf = bytearray()
        self._frag_size = 0
        self._utf8: codecs.IncrementalDecoder | None = None
        self._utf8_fed = 0  # payload bytes of the unfinished text frame already validated
        self.failed = False

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet make a complete frame (plus unfinished fragments)."""
        return len(self._buf) + self._frag_size

    def feed(self, data: bytes | bytearray | memoryview, out: list[tuple[int, bytes]]) -> None:
        """Parse ``data``; append every complete message or control frame to ``out``.

        Raises FrameError on a violation (after appending what came before it);
        once failed, further input is ignored.
        """
        if self.failed:
            return
        buf = self._buf
        if not buf:
            # Nothing held back: parse the read itself, keep only an unfinished
            # tail. The most common read of all is one whole final binary frame
            # in the expected masking, under 126 bytes or 16-bit sized: parsed here.
            # (Only for bytes, what transports give: compiled code then indexes natively.)
            n = len(data)
            if n >= 6 and type(data) is bytes and data[0] == 0x82 and self._frag_opcode < 0:
                b1 = data[1]
                expect = self._expect_masked
                if (b1 & 0x80) == expect and (b1 & 0x7F) != 127:
                    length = b1 & 0x7F
                    start = 2
                    if length == 126:
                        length = (data[2] << 8) | data[3]
                        start = 4
                    if length >= 126 or start == 2:
                        end = start + (4 if expect else 0) + length
                        if end == n and length <= self.max_message_size:
                            if not expect:
                                out.append((OP_BINARY, bytes(data[start:])))
                                return
                            if length:
                                if _UNMASK_AT is not None:
                                    out.append((OP_BINARY, _UNMASK_AT(data, start, length)))
                                    return
                                value = _from_bytes(data[start:], "little")
                                q = (length + 3) >> 2
                                rep = _REPEAT[q] if q <= 256 else _repeat(q)
                                value = (value >> 32) ^ ((value & 0xFFFFFFFF) * rep)
                                out.append((OP_BINARY, value.to_bytes(q << 2, "little")[:length]))
                                return
            src: bytes | bytearray | memoryview = data
        else:
            buf += data
            src = buf
        try:
            pos = self._parse(src, out)
        except FrameError:
            self.failed = True
            buf.clear()
            raise
        if src is buf:
            if pos:
                del buf[:pos]
        elif pos < len(src):
            buf += src[pos:]

    def _parse(self, buf: bytes | bytearray | memoryview, out: list[tuple[int, bytes]]) -> int:
        n = len(buf)
        pos = 0
        expect = self._expect_masked
        limit = self.max_message_size
        append = out.append
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            # Fast path: a final binary frame outside a fragmented message, in
            # the expected masking, up to 64 KiB (what goomerang peers send).
            if (
                b0 == 0x82
                and (b1 & 0x80) == expect
                and (b1 & 0x7F) != 127
                and self._frag_opcode < 0
            ):
                length = b1 & 0x7F
                start = pos + 2
                if length == 126:
                    if n - pos < 4:
                        break
                    length = (buf[pos + 2] << 8) | buf[pos + 3]
                    if length < 126:
                        raise FrameError(CLOSE_PROTOCOL_ERROR, "length not minimally encoded")
                    start = pos + 4
                if length > limit:
                    raise FrameError(
                        CLOSE_TOO_BIG,
                        f"message of {length}+ bytes exceeds max_message_size={limit}",
                    )
                if expect:
                    end = start + 4 + length
                    if end > n:
                        break
                    if not length:
                        append((OP_BINARY, b""))
                    elif _UNMASK_AT is not None:
                        append((OP_BINARY, _UNMASK_AT(buf, start, length)))
                    else:
                        # key and payload as one little-endian integer: the key is its low word
                        value = _from_bytes(buf[start:end], "little")
                        q = (length + 3) >> 2
                        rep = _REPEAT[q] if q <= 256 else _repeat(q)
                        value = (value >> 32) ^ ((value & 0xFFFFFFFF) * rep)
                        append((OP_BINARY, value.to_bytes(q << 2, "little")[:length]))
                else:
                    end = start + length
                    if end > n:
                        break
                    append((OP_BINARY, bytes(buf[start:end])))
                pos = end
                continue
            if b0 & 0x70:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension")
            opcode = b0 & 0x0F
            if (b1 & 0x80) != expect:
                raise FrameError(
                    CLOSE_PROTOCOL_ERROR,
                    "client frame is not masked" if expect else "server frame is masked",
                )
            # Everything the first two bytes decide is checked before waiting
            # for the extended length (fail fast, as wsproto does).
            length = b1 & 0x7F
            if opcode >= 8:
                if opcode not in _CONTROL_OPCODES:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
                if not b0 & 0x80:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
                if length > 125:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "control frame payload over 125 bytes")
            elif opcode == OP_CONTINUATION:
                if self._frag_opcode < 0:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation without a start")
            elif opcode not in _DATA_OPCODES:
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
            elif self._frag_opcode >= 0:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "new data frame inside a fragmented message")
            hlen = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                hlen = 4
                if length < 126:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "length not minimally encoded")
            elif length == 127:
                if n - pos < 10:
                    break
                length = _U64.unpack_from(buf, pos + 2)[0]
                hlen = 10
                if length >> 63:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "64-bit length with the top bit set")
                if length < 0x10000:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "length not minimally encoded")
            fin = b0 & 0x80
            if opcode < 8:
                size = length + self._frag_size if opcode == OP_CONTINUATION else length
                if size > limit:
                    raise FrameError(
                        CLOSE_TOO_BIG,
                        f"message of {size}+ bytes exceeds max_message_size={limit}",
                    )
            if expect:
                hlen += 4
            end = pos + hlen + length
            if end > n:
                if opcode == OP_TEXT or (opcode == OP_CONTINUATION and self._utf8 is not None):
                    self._partial_text(buf, pos + hlen, n, 4 if expect else 0)
                break
            if expect:
                if _UNMASK_AT is not None:
                    payload = _UNMASK_AT(buf, pos + hlen - 4, length)
                else:
                    payload = unmask(
                        memoryview(buf)[pos + hlen : end], bytes(buf[pos + hlen - 4 : pos + hlen])
                    )
            else:
                payload = bytes(buf[pos + hlen : end])
            pos = end
            if opcode == OP_BINARY and fin:
                out.append((OP_BINARY, payload))
            elif opcode >= 8:
                if opcode == OP_CLOSE:
                    parse_close_payload(payload)
                out.append((opcode, payload))
            else:
                self._data_frame(opcode, fin, payload, out)
        return pos

    def _partial_text(
        self, buf: bytes | bytearray | memoryview, start: int, stop: int, keylen: int
    ) -> None:
        """Validate the UTF-8 received so far of an unfinished text frame (fail fast).

        ``start`` is where the payload begins (the masking key, if any, is the
        ``keylen`` bytes before it); only bytes not validated before are decoded.
        """
        fed = self._utf8_fed
        if stop - start <= fed:
            return
        chunk = bytes(buf[start + fed : stop])
        if keylen:
            key = bytes(buf[start - 4 : start])
            shift = fed & 3
            chunk = unmask(chunk, key[shift:] + key[:shift])
        if self._utf8 is None:
            self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._feed_utf8(chunk, False)
        self._utf8_fed = stop - start

    def _data_frame(
        self, opcode: int, fin: int, payload: bytes, out: list[tuple[int, bytes]]
    ) -> None:
        fed = self._utf8_fed
        if fed:
            self._utf8_fed = 0
        if opcode != OP_CONTINUATION:
            if fin:
                if opcode == OP_TEXT:
                    if self._utf8 is not None:
                        self._feed_utf8(payload[fed:], True)
                        self._utf8 = None
                    else:
                        _check_utf8(payload)
                out.append((opcode, payload))
                return
            self._frag_opcode = opcode
            self._frag_buf = bytearray(payload)
            self._frag_size = len(payload)
            if opcode == OP_TEXT:
                if self._utf8 is None:
                    self._utf8 = codecs.getincrementaldecoder("utf-8")()
                self._feed_utf8(payload[fed:], False)
            return
        self._frag_buf += payload
        self._frag_size += len(payload)
        if self._utf8 is not None:
            self._feed_utf8(payload[fed:], bool(fin))
        if fin:
            out.append((self._frag_opcode, bytes(self._frag_buf)))
            self._frag_opcode = -1
            self._frag_buf = bytearray()
            self._frag_size = 0
            self._utf8 = None

    def _feed_utf8(self, payload: bytes, final: bool) -> None:
        assert self._utf8 is not None
        try:
            self._utf8.decode(payload, final)
        except UnicodeDecodeError:
            raise FrameError(CLOSE_INVALID_DATA, "text message is not valid UTF-8") from None


def _check_utf8(payload: bytes) -> None:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(CLOSE_INVALID_DATA, "text message is not valid UTF-8") from None
