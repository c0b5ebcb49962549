"""Read a canonically encoded ``goomerang.protocol.Frame`` without the protobuf runtime.

:func:`read_canonical` takes the Frame bytes of one binary message and
returns its fields, or None for anything outside the canonical encoding that
every goomerang peer writes (Go's protobuf, upb, protobuf-ts; and
:func:`codec.envelope_head`): top-level fields in ascending field-number
order, each at most once (``headers`` entries excepted), with the wire type
of goomerang.proto; a ``creation`` Timestamp of non-negative seconds and
nanos below 10**9 in order; ``headers`` entries of a key then a value.
On None the caller decodes with upb (``pb.Frame.FromString``), which gives
every other encoding its protobuf meaning or its DecodeError; so a None is
never wrong, only slower. Where it answers, it answers what upb would:
tests/proto/test_envelope_reader.py checks that on arbitrary Frames and bytes.

Only the compiled build (``make compiled``) reads with it: compiled by mypyc it
costs about a third of a upb decode plus the attribute reads, while as Python
it costs more than they do, so the engine asks :data:`FAST` before using it.
"""

from __future__ import annotations

from types import FunctionType
from typing import Final

from mypy_extensions import i64

Fields = tuple[str, str, bool, int, dict[str, str], bytes]
"""(uuid, kind, is_sync, creation_ns, headers, payload), as the Frame's fields say."""
Read = tuple[bool, str, str, bool, int, dict[str, str], bytes]
"""(read, *Fields): what :func:`read_fields` returns; read is False for ``NOT_READ``."""
NOT_READ: Final[Read] = (False, "", "", False, 0, {}, b"")
"""The answer for a Frame that upb must decode (its dict is never handed out)."""

_NS: Final = 1_000_000_000
_MAX_SECONDS: Final = (1 << 63) // _NS  # a bound on what peers send; upb reads the same value


def _varint(data: bytes, i: int, end: int, limit: int = 63) -> tuple[i64, int]:
    """The minimally encoded varint at ``data[i]`` and the index after it.

    At most ``limit`` bits (63 by default: 9 bytes; a negative int64 takes 10).
    (0, -1) when it runs past ``end``, is longer, or ends in a 0x00 byte after
    the first (padding: upb reads some padded forms and refuses others, such as
    a length prefix over 5 bytes, so none is read here).
    """
    # i64: native arithmetic in the compiled build (at most 63 bits, see limit); int in Python
    value: i64 = 0
    shift: i64 = 0
    while i < end and shift < limit:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if b == 0 and shift:
                return 0, -1
            return value, i
        shift += 7
    return 0, -1


def _length(data: bytes, i: int, end: int) -> tuple[int, int]:
    """A length prefix at ``data[i]``: (start, stop) of the bytes it covers, or (0, -1).

    At most 3 bytes (a field under 2 MiB): a longer field is left to upb.
    """
    if i < end and data[i] < 0x80:  # one byte: every field of a small message but one
        start = i + 1
        length = data[i]
    else:
        length, start = _varint(data, i, end, 21)
    if start < 0 or length > end - start:
        return 0, -1
    return start, start + length


def _timestamp(data: bytes, i: int, end: int) -> int:
    """A canonical Timestamp in ``data[i:end]`` in nanoseconds; -1 when not canonical."""
    seconds: i64 = 0
    nanos: i64 = 0
    if i < end and data[i] == 0x08:
        seconds, i = _varint(data, i + 1, end)
        if i < 0 or seconds > _MAX_SECONDS:
            return -1
    if i < end and data[i] == 0x10:
        nanos, i = _varint(data, i + 1, end)
        if i < 0 or nanos >= _NS:
            return -1
    if i != end:
        return -1
    return seconds * _NS + nanos


def _header(data: bytes, i: int, end: int, headers: dict[str, str]) -> bool:
    """Add the canonical map entry in ``data[i:end]`` to ``headers``; False when not canonical."""
    key = value = ""
    if i < end and data[i] == 0x0A:
        start, i = _length(data, i + 1, end)
        if i < 0:
            return False
        key = data[start:i].decode()
    if i < end and data[i] == 0x12:
        start, i = _length(data, i + 1, end)
        if i < 0:
            return False
        value = data[start:i].decode()
    if i != end:
        return False
    headers[key] = value
    return True


def read_canonical(data: bytes) -> Fields | None:
    """The fields of the canonical Frame ``data``, or None (then decode it with upb).

    ``data`` must be ``bytes`` (what the frame reader gives; the compiled build
    raises TypeError on anything else). Never raises on its content: strings that
    are not UTF-8, truncated fields, unknown or repeated fields and out-of-order
    fields all give None.
    """
    ok, uuid, kind, is_sync, creation_ns, headers, payload = read_fields(data)
    return (uuid, kind, is_sync, creation_ns, headers, payload) if ok else None


def read_fields(data: bytes) -> Read:
    """:func:`read_canonical` for the engine: ``(True, *fields)``, or ``NOT_READ``.

    A tuple of fixed shape, never None: compiled code returns it unboxed (no tuple
    object, no int or bool objects for its fields).
    """
    uuid = kind = ""
    is_sync = False
    creation_ns = 0
    headers: dict[str, str] = {}
    payload = b""
    end = len(data)
    i = 0
    last = 0
    try:
        while i < end:
            tag = data[i]
            field = tag >> 3
            if field < last or (field == last and field != 6):
                return NOT_READ
            last = field
            if tag == 0x18 or tag == 0x20:  # payloadSize (not used: len(payload) is), is_sync
                value, i = _varint(data, i + 1, end)
                if i < 0:
                    return NOT_READ
                if tag == 0x20:
                    is_sync = value != 0
                continue
            if (tag & 7) != 2 or field > 7 or field < 1:
                return NOT_READ
            start, i = _length(data, i + 1, end)
            if i < 0:
                return NOT_READ
            if field == 7:
                payload = data[start:i]
            elif field == 2:
                kind = data[start:i].decode()
            elif field == 1:
                uuid = data[start:i].decode()
            elif field == 5:
                creation_ns = _timestamp(data, start, i)
                if creation_ns < 0:
                    return NOT_READ
            elif field == 6:
                if not _header(data, start, i, headers):
                    return NOT_READ
            else:  # fields 3 and 4 are varints
                return NOT_READ
    except UnicodeDecodeError:
        return NOT_READ
    return True, uuid, kind, is_sync, creation_ns, headers, payload


FAST: Final = not isinstance(read_canonical, FunctionType)
"""True when this module is compiled (mypyc turns functions into builtins): the engine
reads with :func:`read_canonical` only then, and with upb otherwise."""

__all__ = ["FAST", "NOT_READ", "Fields", "Read", "read_canonical", "read_fields"]
