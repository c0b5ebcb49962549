"""Hypothesis strategies for goomerang: messages, headers, envelopes, WebSocket frames, reads.

Needs ``hypothesis`` (``pip install goomerang[testing]``). Every strategy
yields plain values a test feeds to the engine or to a peer:

* :func:`headers`: goomerang header maps (unicode, empty keys and values);
* :func:`protobuf_messages`: instances of any protobuf class, every field kind;
* :func:`messages`: :class:`~goomerang_proto.Message` of a user's classes with headers;
* :func:`envelopes`: ``goomerang.protocol.Frame`` bytes: messages, sync
  requests, the four commands, unknown kinds, garbage;
* :func:`ws_frames` / :func:`peer_streams`: WebSocket frames (data,
  fragments with interleaved pings, control frames) and whole streams that end
  in a close, a protocol violation or raw bytes;
* :func:`splits`: a byte stream cut into arbitrary reads.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

from .. import codec
from .. import frames as fr
from ..message import Message
from ..pb import goomerang_example_pb2 as ex

MASK_KEY = b"\x37\xfa\x21\x3d"
"""The fixed mask key of the frames built here (deterministic bytes)."""

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_SINT32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_INT64: (-(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_SINT64: (-(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_UINT32: (0, (1 << 32) - 1),
    FieldDescriptor.TYPE_FIXED32: (0, (1 << 32) - 1),
    FieldDescriptor.TYPE_UINT64: (0, (1 << 64) - 1),
    FieldDescriptor.TYPE_FIXED64: (0, (1 << 64) - 1),
}


def header_text(max_size: int = 8) -> st.SearchStrategy[str]:
    """Header keys and values: any unicode text without surrogates, empty included."""
    return st.text(st.characters(exclude_categories=["Cs"]), max_size=max_size)


def headers(max_size: int = 3, *, text_size: int = 8) -> st.SearchStrategy[dict[str, str]]:
    """Goomerang header maps (``map<string,string>``): unicode, empty keys and values."""
    return st.dictionaries(header_text(text_size), header_text(text_size), max_size=max_size)


def _scalar(field: Any, depth: int) -> st.SearchStrategy[Any]:
    t = field.type
    if t in _INT_RANGES:
        lo, hi = _INT_RANGES[t]
        return st.integers(lo, hi)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_STRING:
        return header_text(20)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=20)
    if t == FieldDescriptor.TYPE_DOUBLE:
        return st.floats(allow_nan=False)
    if t == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32, allow_nan=False)
    if t == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values])
    if t == FieldDescriptor.TYPE_MESSAGE:
        return _message_of(GetMessageClass(field.message_type), depth + 1)
    raise TypeError(f"unsupported protobuf field type {t} ({field.full_name})")


def _message_of(cls: type[ProtoMessage], depth: int) -> st.SearchStrategy[ProtoMessage]:
    fields = cls.DESCRIPTOR.fields

    @st.composite
    def build(draw: st.DrawFn) -> ProtoMessage:
        msg = cls()
        for field in fields:
            if depth > 2 and field.type == FieldDescriptor.TYPE_MESSAGE:
                continue  # bound recursive types
            if not draw(st.booleans()):
                continue  # leave at its default
            target = getattr(msg, field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                key_f = field.message_type.fields_by_name["key"]
                val_f = field.message_type.fields_by_name["value"]
                entries = draw(
                    st.dictionaries(_scalar(key_f, depth), _scalar(val_f, depth), max_size=3)
                )
                for k, v in entries.items():
                    if val_f.type == FieldDescriptor.TYPE_MESSAGE:
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif field.is_repeated:
                values = draw(st.lists(_scalar(field, depth), max_size=3))
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    for v in values:
                        target.add().CopyFrom(v)
                else:
                    target.extend(values)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                target.CopyFrom(draw(_scalar(field, depth)))
            else:
                setattr(msg, field.name, draw(_scalar(field, depth)))
        return msg

    return build()


def protobuf_messages(cls: type[ProtoMessage]) -> st.SearchStrategy[ProtoMessage]:
    """Instances of protobuf class ``cls`` with arbitrary field values (any field kind).

    Scalars cover their whole range (NaN excluded, so values compare equal),
    strings are unicode, repeated fields and maps hold up to 3 entries,
    nested messages go 3 levels deep. TypeError for groups.
    """
    return _message_of(cls, 0)


def messages(
    *classes: type[ProtoMessage],
    header_maps: st.SearchStrategy[dict[str, str]] | None = None,
) -> st.SearchStrategy[Message[Any]]:
    """goomerang Messages whose payload is one of ``classes`` (default ``MessageV1``).

    ``header_maps`` defaults to :func:`headers`.
    """
    chosen = classes or (ex.MessageV1,)
    hdrs = header_maps if header_maps is not None else headers()
    payloads = st.one_of([protobuf_messages(c) for c in chosen])
    return st.builds(Message, payloads, hdrs)


_small_messages = st.builds(
    Message, st.builds(ex.MessageV1, message=header_text(20)), headers(2, text_size=5)
)
"""MessageV1 with small unicode text and headers: the envelopes' default (cheap to draw)."""


def uuids() -> st.SearchStrategy[str]:
    """Sync correlation ids as the wire carries them: 36-character UUID v4 text."""
    return st.uuids(version=4).map(str)


creation_ns = st.integers(0, (1 << 62))
"""Envelope creation timestamps in nanoseconds since the epoch (0: absent)."""


@st.composite
def envelopes(
    draw: st.DrawFn,
    *,
    client_to_server: bool = True,
    message_strategy: st.SearchStrategy[Message[Any]] | None = None,
) -> bytes:
    """Frame bytes a peer might send: every field, every command kind, unknown kinds, garbage.

    ``message_strategy`` defaults to small MessageV1 messages with headers.
    From a client (``client_to_server``): plain and sync messages, the four
    commands (Broadcast/Publish/Subscribe/Unsubscribe with ``message-``
    headers), a Frame of an unknown kind, random bytes. From a server: plain
    messages, sync replies, unknown kinds, random bytes.
    """
    msg = draw(message_strategy if message_strategy is not None else _small_messages)
    choice = draw(st.integers(0, 8 if client_to_server else 4))
    ns = draw(creation_ns)
    topic = draw(header_text(10))
    if choice == 0:
        return codec.pack(msg, creation_ns=ns)
    if choice == 1:
        return codec.pack(msg, uuid=draw(uuids()), is_sync=True, creation_ns=ns)
    if choice == 2:
        return codec.pack_envelope("goomerang.example.Nope", b"", creation_ns=ns)
    if choice == 3:
        return draw(st.binary(max_size=40))
    if choice == 4:
        return codec.pack(Message(msg.payload))
    if choice == 5:
        return codec.pack_broadcast_cmd(msg, creation_ns=ns)
    if choice == 6:
        return codec.pack_publish_cmd(topic, msg, creation_ns=ns)
    if choice == 7:
        return codec.pack_subscribe_cmd(topic, creation_ns=ns)
    return codec.pack_unsubscribe_cmd(topic, creation_ns=ns)


def frame(opcode: int, payload: bytes, *, masked: bool, fin: bool = True) -> bytes:
    """One WebSocket frame (RFC 6455 section 5.2), masked with :data:`MASK_KEY` when ``masked``."""
    return fr.build_frame(opcode, payload, mask=masked, mask_key=MASK_KEY, fin=fin)


@st.composite
def ws_frames(draw: st.DrawFn, *, client_to_server: bool = True) -> bytes:
    """One well-formed item of a stream: a message (maybe fragmented, pings in between),
    a text message, a Ping (0-125 bytes) or a Pong. Masked when ``client_to_server``.
    """
    masked = client_to_server
    choice = draw(st.integers(0, 5))
    if choice <= 1:
        return frame(
            fr.OP_BINARY, draw(envelopes(client_to_server=client_to_server)), masked=masked
        )
    if choice == 2:
        body = draw(envelopes(client_to_server=client_to_server))
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
        parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        out = b""
        for i, part in enumerate(parts):
            opcode = fr.OP_BINARY if i == 0 else fr.OP_CONTINUATION
            out += frame(opcode, part, masked=masked, fin=i == len(parts) - 1)
            if i < len(parts) - 1 and draw(st.booleans()):
                out += frame(fr.OP_PING, draw(st.binary(max_size=8)), masked=masked)
        return out
    if choice == 3:
        return frame(fr.OP_TEXT, draw(st.text(max_size=20)).encode(), masked=masked)
    if choice == 4:
        return frame(fr.OP_PING, draw(st.binary(max_size=125)), masked=masked)
    return frame(fr.OP_PONG, draw(st.binary(max_size=20)), masked=masked)


def protocol_violations(*, client_to_server: bool = True) -> st.SearchStrategy[bytes]:
    """Frames an endpoint must fail the connection on (RFC 6455 sections 5.2-5.5, 7.4, 8.1)."""
    masked = client_to_server
    return st.sampled_from(
        [
            frame(fr.OP_BINARY | 0x40, b"x", masked=masked),  # RSV1 without an extension
            frame(0x3, b"", masked=masked),  # reserved opcode
            frame(fr.OP_CLOSE, b"\x03\xed", masked=masked),  # close code 1005 on the wire
            frame(fr.OP_TEXT, b"\xff\xfe", masked=masked),  # invalid UTF-8
            frame(fr.OP_CLOSE, b"\x03\xe8\xff", masked=masked),  # invalid UTF-8 close reason
            frame(fr.OP_PING, b"x", masked=masked, fin=False),  # fragmented control frame
            frame(fr.OP_CONTINUATION, b"x", masked=masked),  # continuation with nothing to continue
            frame(fr.OP_BINARY, b"x", masked=not masked),  # wrong masking for the direction
        ]
    )


@st.composite
def stream_endings(draw: st.DrawFn, *, client_to_server: bool = True) -> bytes:
    """How a peer's stream may end: nothing, a close, a violation, a huge length, or raw bytes."""
    masked = client_to_server
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return b""
    if choice == 1:
        code = draw(st.sampled_from([1000, 1001, 1003, 1011, 3000, 4999]))
        return frame(fr.OP_CLOSE, fr.close_payload(code, draw(st.text(max_size=20))), masked=masked)
    if choice == 2:
        return frame(fr.OP_CLOSE, b"", masked=masked)
    if choice == 3:  # a frame header claiming far more than any limit
        return fr.frame_header(fr.OP_BINARY, 1 << 40, masked=masked) + MASK_KEY * masked
    if choice == 4:
        return draw(protocol_violations(client_to_server=client_to_server))
    return draw(st.binary(min_size=1, max_size=30))


@st.composite
def peer_streams(draw: st.DrawFn, *, client_to_server: bool = True) -> bytes:
    """A whole post-handshake byte stream from a peer: frames, an ending, trailing bytes."""
    items = draw(st.lists(ws_frames(client_to_server=client_to_server), max_size=8))
    ending = draw(stream_endings(client_to_server=client_to_server))
    trailing = draw(st.binary(max_size=10))
    return b"".join(items) + ending + trailing


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary points into non-empty reads (what a socket may deliver)."""
    if not data:
        return []
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=20))))
    cuts = [c for c in cuts if 0 < c < len(data)]
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


__all__ = [
    "MASK_KEY",
    "creation_ns",
    "envelopes",
    "frame",
    "header_text",
    "headers",
    "messages",
    "peer_streams",
    "protobuf_messages",
    "protocol_violations",
    "splits",
    "stream_endings",
    "uuids",
    "ws_frames",
]
