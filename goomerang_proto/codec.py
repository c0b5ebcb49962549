"""Envelope codec: pack and unpack ``goomerang.protocol.Frame`` and the commands.

Packing writes the Frame by hand, in field-number order with proto3
defaults omitted, exactly as the Go implementation does (see PROTOCOL.md).
Unpacking uses the protobuf runtime (upb). Commands carry the original
message's headers with the ``message-`` prefix; :func:`strip_command_headers`
undoes it on the server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, cast

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from mypy_extensions import i64

from .errors import MalformedFrame, UnknownKind
from .message import Message
from .pb import goomerang_frame_pb2 as pb
from .registry import Registry, kind_of

BROADCAST_CMD = kind_of(pb.BroadcastCmd)
SUBSCRIBE_CMD = kind_of(pb.SubscribeCmd)
UNSUBSCRIBE_CMD = kind_of(pb.UnsubscribeCmd)
PUBLISH_CMD = kind_of(pb.PublishCmd)
COMMAND_KINDS: Final = frozenset({BROADCAST_CMD, SUBSCRIBE_CMD, UNSUBSCRIBE_CMD, PUBLISH_CMD})
HEADER_PREFIX = "message-"

_VARINT1: Final = [bytes((i,)) for i in range(128)]


# Every varint below 2**14 (sizes, lengths) is looked up, not computed;
# _CONT2[i] is i (< 2**14) as the first two bytes of a longer varint.
_VARINT2: Final = _VARINT1 + [bytes(((i & 0x7F) | 0x80, i >> 7)) for i in range(128, 1 << 14)]
_CONT2: Final = [bytes(((i & 0x7F) | 0x80, (i >> 7) | 0x80)) for i in range(1 << 14)]


def varint(value: int) -> bytes:
    """Encode a non-negative (or int64, two's complement) integer as a protobuf varint."""
    if 0 <= value < 16384:
        return _VARINT2[value]
    if 0 < value < 1 << 28:
        return _CONT2[value & 0x3FFF] + _VARINT2[value >> 14]
    if 0 < value < 1 << 42:
        return _CONT2[value & 0x3FFF] + _CONT2[(value >> 14) & 0x3FFF] + _VARINT2[value >> 28]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, data: bytes) -> bytes:
    return tag + varint(len(data)) + data


_KIND_FIELD_CACHE: Final[dict[str, bytes]] = {}


def _kind_field(kind: str) -> bytes:
    cached = _KIND_FIELD_CACHE.get(kind)
    if cached is None:
        cached = _field(b"\x12", kind.encode())
        if len(_KIND_FIELD_CACHE) < 4096:
            _KIND_FIELD_CACHE[kind] = cached
    return cached


_NS_LIMIT: Final = 1 << 62  # below: i64 arithmetic in the compiled build (year 2116)

_c_timestamp_field: Callable[[int], bytes] | None
try:  # the compiled build's C encoder (setup.ACCELERATORS); absent in a pure install
    from ._timestamp import timestamp_field as _c_timestamp_field
except ImportError:
    _c_timestamp_field = None
_TIMESTAMP_FIELD: Final = _c_timestamp_field


def encode_timestamp(creation_ns: int) -> bytes:
    """The ``creation`` field (number 5) for a time in nanoseconds since the epoch, or b""."""
    if _TIMESTAMP_FIELD is not None and 0 <= creation_ns < _NS_LIMIT:
        return _TIMESTAMP_FIELD(creation_ns)  # the same bytes (tests/proto/test_timestamp_accel.py)
    seconds: int
    nanos: int
    high: int
    if 0 <= creation_ns < _NS_LIMIT:
        # native int64 arithmetic when compiled (divmod of a Python int is an object call)
        ns: i64 = creation_ns
        s: i64 = ns // 1_000_000_000
        n: i64 = ns - s * 1_000_000_000
        seconds, nanos, high = s, n, n >> 14
    else:
        seconds, nanos = divmod(creation_ns, 1_000_000_000)
        high = nanos >> 14
    cached = _ts_cache[0]  # one tuple, read and replaced whole: safe across threads
    if seconds == cached[0] and high == cached[1]:
        # Same second and same 16 us window as the last call: only the low
        # 14 bits of nanos (the first two bytes of its varint) differ.
        return cached[2] + _CONT2[nanos & 0x3FFF] + cached[3]
    if not creation_ns:
        return b""
    if seconds == cached[0]:
        secs = cached[4]
    else:
        secs = b"\x08" + varint(seconds) if seconds else b""
    if not high:
        body = secs + b"\x10" + _VARINT2[nanos] if nanos else secs
        return b"\x2a" + _VARINT1[len(body)] + body
    # nanos < 10**9, so high < 2**16: its varint is one table entry or two
    tail = _VARINT2[high] if high < 16384 else _CONT2[high & 0x3FFF] + _VARINT1[high >> 14]
    head = b"\x2a" + _VARINT1[len(secs) + 3 + len(tail)] + secs + b"\x10"
    _ts_cache[0] = (seconds, high, head, tail, secs)
    return head + _CONT2[nanos & 0x3FFF] + tail


# Of the last timestamp encoded with nanos >= 2**14: seconds, nanos >> 14,
# the field's bytes before the nanos varint, that varint after its first two
# bytes, and the seconds field.
_ts_cache: Final[list[tuple[int, int, bytes, bytes, bytes]]] = [(-1, -1, b"", b"", b"")]


# Encoded header entries by key, then value (two lookups, no key tuple to build):
# replies often carry the same few headers. Bounded (keys, values per key and
# entry size: at most 32 * 32 entries of 256 bytes): a peer's headers may be echoed.
_HEADER_CACHE: Final[dict[str, dict[str, bytes]]] = {}
_HEADER_CACHE_KEYS: Final = 32
_HEADER_CACHE_VALUES: Final = 32
_HEADER_CACHE_ENTRY_MAX: Final = 256


def _header_entry(key: str, value: str) -> bytes:
    if not isinstance(key, str) or not isinstance(value, str):
        raise _not_str_headers(key, value)
    entry = _field(b"\x0a", key.encode()) + _field(b"\x12", value.encode())
    return b"\x32" + varint(len(entry)) + entry


def _not_str_headers(key: object, value: object) -> TypeError:
    return TypeError(
        f"message.headers must map str to str; {key!r}: {value!r} is "
        f"{type(key).__name__}: {type(value).__name__}"
    )


def encode_headers(headers: dict[str, str]) -> bytes:
    """The ``headers`` map field (number 6) for ``headers``.

    Raises TypeError when a key or a value is not a str (the map is
    ``map<string, string>`` in goomerang.proto); the check runs where an
    entry is first encoded, so cached entries cost nothing.
    """
    if not headers:
        return b""
    if type(headers) is not dict and not isinstance(headers, dict):
        # (the compiled build refuses it at the call: the same rule in both builds)
        raise TypeError(f"message.headers must be a dict[str, str], got {type(headers).__name__}")
    try:
        cache = _HEADER_CACHE
        parts = []
        for key, value in headers.items():
            values = cache.get(key)
            entry = values.get(value) if values is not None else None
            if entry is None:
                entry = _header_entry(key, value)
                if len(entry) <= _HEADER_CACHE_ENTRY_MAX:
                    if values is None and len(cache) < _HEADER_CACHE_KEYS:
                        values = cache[key] = {}
                    if values is not None and len(values) < _HEADER_CACHE_VALUES:
                        values[value] = entry
            if len(headers) == 1:
                return entry
            parts.append(entry)
        return b"".join(parts)
    except TypeError:  # an unhashable key or value: find it and say which
        # (through Any, and names of their own: compiled code types a name once per
        # function and would check str before isinstance)
        for some_key, some_value in cast(Any, headers).items():
            if not isinstance(some_key, str) or not isinstance(some_value, str):
                raise _not_str_headers(some_key, some_value) from None
        raise


def envelope_head(
    kind: str,
    size: int,
    headers: dict[str, str] | None = None,
    uuid: str = "",
    is_sync: bool = False,
    creation_ns: int = 0,
) -> bytes:
    """Every byte of a Frame that comes before a payload of ``size`` bytes.

    ``envelope_head(...) + payload`` is the whole Frame; writers that gather
    buffers use it to avoid copying the payload.
    """
    # one join of the pieces, tags apart from their values: no bytes is concatenated
    kind_field = _KIND_FIELD_CACHE.get(kind) or _kind_field(kind)
    if uuid:
        ub = uuid.encode()
        n = len(ub)
        uuid_tag = b"\x0a$" if n == 36 else b"\x0a" + varint(n)
    else:
        ub = uuid_tag = b""
    if size:
        sz = _VARINT2[size] if size < 16384 else varint(size)
        size_tag = b"\x18"
        payload_tag = b"\x3a"
    else:
        sz = size_tag = payload_tag = b""
    return b"".join(
        (
            uuid_tag,
            ub,
            kind_field,
            size_tag,
            sz,
            b"\x20\x01" if is_sync else b"",
            encode_timestamp(creation_ns) if creation_ns else b"",
            encode_headers(headers) if headers else b"",
            payload_tag,
            sz,
        )
    )


def pack_envelope(
    kind: str,
    payload: bytes,
    headers: dict[str, str] | None = None,
    *,
    uuid: str = "",
    is_sync: bool = False,
    creation_ns: int = 0,
) -> bytes:
    """Serialize a Frame from already-serialized payload bytes."""
    return envelope_head(kind, len(payload), headers, uuid, is_sync, creation_ns) + payload


def pack(
    message: Message[Any],
    *,
    uuid: str = "",
    is_sync: bool = False,
    creation_ns: int = 0,
) -> bytes:
    """Serialize ``message`` into Frame bytes (the WebSocket binary message body)."""
    return pack_envelope(
        message.kind,
        message.payload.SerializeToString(),
        message.headers,
        uuid=uuid,
        is_sync=is_sync,
        creation_ns=creation_ns,
    )


def prefix_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add the ``message-`` prefix to every key (client side of a command)."""
    return {HEADER_PREFIX + k: v for k, v in headers.items()}


def strip_command_headers(headers: dict[str, str]) -> dict[str, str]:
    """Strip the ``message-`` prefix and drop unprefixed keys (server side of a command)."""
    n = len(HEADER_PREFIX)
    return {k[n:]: v for k, v in headers.items() if k.startswith(HEADER_PREFIX)}


def pack_broadcast_cmd(message: Message[Any], *, creation_ns: int = 0) -> bytes:
    """A client's BroadcastCmd Frame for ``message``."""
    cmd = pb.BroadcastCmd(kind=message.kind, message=message.payload.SerializeToString())
    return pack_envelope(
        BROADCAST_CMD,
        cmd.SerializeToString(),
        prefix_headers(message.headers),
        creation_ns=creation_ns,
    )


def pack_publish_cmd(topic: str, message: Message[Any], *, creation_ns: int = 0) -> bytes:
    """A client's PublishCmd Frame for ``message`` on ``topic``."""
    cmd = pb.PublishCmd(topic=topic, kind=message.kind, message=message.payload.SerializeToString())
    return pack_envelope(
        PUBLISH_CMD,
        cmd.SerializeToString(),
        prefix_headers(message.headers),
        creation_ns=creation_ns,
    )


def pack_subscribe_cmd(topic: str, *, creation_ns: int = 0, group: str = "") -> bytes:
    """A client's SubscribeCmd Frame; ``group`` (field 100, an extension) when not empty."""
    cmd = pb.SubscribeCmd(topic=topic, group=group)
    return pack_envelope(SUBSCRIBE_CMD, cmd.SerializeToString(), creation_ns=creation_ns)


def pack_unsubscribe_cmd(topic: str, *, creation_ns: int = 0, group: str = "") -> bytes:
    """A client's UnsubscribeCmd Frame; ``group`` (field 100, an extension) when not empty."""
    cmd = pb.UnsubscribeCmd(topic=topic, group=group)
    return pack_envelope(UNSUBSCRIBE_CMD, cmd.SerializeToString(), creation_ns=creation_ns)


def more_headers_than(data: bytes, limit: int) -> bool:
    """Whether the encoded Frame ``data`` has more than ``limit`` ``headers`` entries
    (top-level field 6), found without decoding it: the decoder would build every entry
    first (a 1 MiB Frame of 100,000 tiny entries takes about 10 MB to decode).

    Walks the top-level fields only (a payload is skipped at once) and stops past
    ``limit``; anything malformed answers False and is left to the decoder. Cheap
    first test: a Frame with no more than ``limit`` 0x32 bytes (field 6's tag) cannot
    have more entries.
    """
    if data.count(b"\x32") <= limit:
        return False
    n = i = 0
    end = len(data)
    while i < end:
        key, i = _varint_at(data, i)
        wire = key & 7
        if i < 0:
            return False
        if wire == 0 or wire == 2:  # a varint value, or a length prefix
            value, i = _varint_at(data, i)
            if i < 0:
                return False
            if wire == 2:
                i += value
                if key >> 3 == 6:
                    n += 1
                    if n > limit:
                        return True
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            return False
    return False


def _varint_at(data: bytes, i: int) -> tuple[int, int]:
    """The varint at ``data[i]`` and the index after it; (0, -1) when it runs off the end."""
    value = shift = 0
    end = len(data)
    while i < end:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
    return 0, -1


def decode_frame(data: bytes) -> pb.Frame:
    """Parse Frame bytes; raise MalformedFrame when they are not a Frame."""
    try:
        return pb.Frame.FromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise MalformedFrame(f"binary message is not a goomerang Frame: {exc}") from exc


def decode_payload(cls: type[ProtoMessage], data: bytes, kind: str) -> ProtoMessage:
    """Parse a payload of class ``cls``; raise MalformedFrame on failure."""
    try:
        return cls.FromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise MalformedFrame(f"payload does not decode as {kind}: {exc}") from exc


def frame_creation_ns(frame: pb.Frame) -> int:
    """The Frame's creation time in nanoseconds since the epoch (0 when absent)."""
    if not frame.HasField("creation"):
        return 0
    c = frame.creation
    return int(c.seconds) * 1_000_000_000 + int(c.nanos)


def unpack(data: bytes, registry: Registry) -> Message[Any]:
    """Decode Frame bytes into a Message whose payload class comes from ``registry``.

    Raises MalformedFrame for bytes that are not a Frame or a payload that does
    not decode, and UnknownKind for a kind that is not registered.
    """
    frame = decode_frame(data)
    return message_from_frame(frame, registry)


def message_from_frame(frame: pb.Frame, registry: Registry) -> Message[Any]:
    """Build a Message from a parsed Frame (payload decoded through ``registry``)."""
    # Hot path (every received message): dict() of an empty upb map and the
    # helper calls cost more than the envelope decode itself, so skip them.
    kind = frame.kind
    cls = registry.get(kind)
    if cls is None:
        raise UnknownKind(kind)
    body = frame.payload
    try:
        payload = cls.FromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise MalformedFrame(f"payload does not decode as {kind}: {exc}") from exc
    headers = frame.headers
    creation_ns = 0
    if frame.HasField("creation"):
        c = frame.creation
        creation_ns = c.seconds * 1_000_000_000 + c.nanos
    return Message(
        payload,
        {k: headers[k] for k in headers} if headers else {},  # dict(upb map): 2x slower
        kind=kind,
        uuid=frame.uuid,
        is_sync=frame.is_sync,
        creation_ns=creation_ns,
        payload_size=len(body),
    )


def decode_command_message(
    kind: str, body: bytes, headers: dict[str, str], registry: Registry
) -> Message[Any]:
    """Decode the message carried inside a Broadcast or Publish command."""
    cls = registry.get(kind)
    if cls is None:
        raise UnknownKind(kind)
    payload = decode_payload(cls, body, kind)
    return Message(payload, strip_command_headers(headers), kind=kind, payload_size=len(body))
