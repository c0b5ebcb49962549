"""Helpers shared by the engine tests: handshakes, frame builders, event normal forms."""

from __future__ import annotations

import inspect
from typing import Any

from hypothesis import strategies as st

from goomerang_proto import codec
from goomerang_proto import events as ev
from goomerang_proto import frames as fr
from goomerang_proto.client_connection import ClientConnection
from goomerang_proto.connection import BaseConnection
from goomerang_proto.handshake import accept_token
from goomerang_proto.message import Message
from goomerang_proto.pb import goomerang_example_pb2 as ex
from goomerang_proto.registry import Registry
from goomerang_proto.server_connection import ServerConnection
from goomerang_proto.status import Status

REGISTRY = Registry(ex.MessageV1, ex.ReplyV1)
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK_KEY = b"\x37\xfa\x21\x3d"
UPGRADE_REQUEST = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: " + WS_KEY.encode() + b"\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
UPGRADE_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: " + accept_token(WS_KEY).encode() + b"\r\n\r\n"
)

# Every event class events.py documents.
DOCUMENTED_EVENTS: tuple[type[ev.Event], ...] = tuple(
    cls
    for _, cls in inspect.getmembers(ev, inspect.isclass)
    if issubclass(cls, ev.Event) and cls is not ev.Event and cls.__module__ == ev.__name__
)
FAIL_CODES = frozenset({fr.CLOSE_PROTOCOL_ERROR, fr.CLOSE_INVALID_DATA, fr.CLOSE_TOO_BIG})


def server_running(**kwargs: Any) -> ServerConnection:
    """A ServerConnection whose upgrade is done, with its events and output drained."""
    kwargs.setdefault("registry", REGISTRY)
    conn = ServerConnection(**kwargs)
    conn.receive_data(UPGRADE_REQUEST)
    assert conn.status is Status.RUNNING, conn.events()
    assert [type(e) for e in conn.events()] == [ev.Connected]
    assert conn.data_to_send().startswith(b"HTTP/1.1 101 ")
    return conn


def client_running(**kwargs: Any) -> ClientConnection:
    """A ClientConnection whose upgrade is done, with its events and output drained."""
    kwargs.setdefault("registry", REGISTRY)
    conn = ClientConnection("127.0.0.1:1", key=WS_KEY, **kwargs)
    assert conn.data_to_send().startswith(b"GET /ws HTTP/1.1\r\n")
    conn.receive_data(UPGRADE_RESPONSE)
    assert conn.status is Status.RUNNING, conn.events()
    assert [type(e) for e in conn.events()] == [ev.Connected]
    return conn


def frame(opcode: int, payload: bytes, *, masked: bool, fin: bool = True) -> bytes:
    """One frame, masked with the fixed MASK_KEY when ``masked``."""
    return fr.build_frame(opcode, payload, mask=masked, mask_key=MASK_KEY, fin=fin)


def norm_message(m: Message[Any]) -> tuple[Any, ...]:
    """A comparable form of a Message."""
    return (
        m.kind,
        m.payload.SerializeToString(),
        tuple(sorted(m.headers.items())),
        m.uuid,
        m.is_sync,
        m.creation_ns,
        m.payload_size,
    )


def norm_event(e: ev.Event) -> tuple[Any, ...]:
    """A comparable form of an event (errors compare by type and text)."""
    out: list[Any] = [type(e).__name__]
    for name in e.__dataclass_fields__:  # type: ignore[attr-defined]
        value = getattr(e, name)
        if isinstance(value, Message):
            value = norm_message(value)
        elif isinstance(value, BaseException):
            value = (type(value).__name__, str(value))
        out.append(value)
    return tuple(out)


def decode_output(data: bytes, *, from_client: bool) -> list[tuple[int, bytes]]:
    """Parse what a connection wrote (client frames are masked) into (opcode, payload)."""
    reader = fr.FrameReader(expect_masked=from_client, max_message_size=1 << 30)
    out: list[tuple[int, bytes]] = []
    reader.feed(data, out)
    assert reader.buffered == 0, "a connection wrote a partial frame"
    return out


# --------------------------------------------------------------- strategies
texts = st.text(max_size=20)
headers_st = st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)


@st.composite
def envelopes(draw: st.DrawFn, *, client_to_server: bool) -> bytes:
    """Frame bytes a peer might send: valid messages, commands, unknown kinds, garbage."""
    msg = Message(ex.MessageV1(message=draw(texts)), draw(headers_st))
    choice = draw(st.integers(0, 8 if client_to_server else 4))
    ns = draw(st.integers(0, 1 << 62))
    if choice == 0:
        return codec.pack(msg, creation_ns=ns)
    if choice == 1:
        return codec.pack(msg, uuid=draw(st.uuids()).__str__(), is_sync=True, creation_ns=ns)
    if choice == 2:
        return codec.pack_envelope("goomerang.example.Nope", b"", creation_ns=ns)
    if choice == 3:
        return draw(st.binary(max_size=40))
    if choice == 4:
        return codec.pack(Message(ex.MessageV1(message=draw(texts))))
    if choice == 5:
        return codec.pack_broadcast_cmd(msg, creation_ns=ns)
    if choice == 6:
        return codec.pack_publish_cmd(draw(texts), msg, creation_ns=ns)
    if choice == 7:
        return codec.pack_subscribe_cmd(draw(texts), creation_ns=ns)
    return codec.pack_unsubscribe_cmd(draw(texts), creation_ns=ns)


@st.composite
def peer_frames(draw: st.DrawFn, *, client_to_server: bool) -> bytes:
    """One well-formed frame sequence item (messages, fragments, control frames)."""
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
        return frame(fr.OP_TEXT, draw(texts).encode(), masked=masked)
    if choice == 4:
        return frame(fr.OP_PING, draw(st.binary(max_size=125)), masked=masked)
    return frame(fr.OP_PONG, draw(st.binary(max_size=20)), masked=masked)


@st.composite
def peer_endings(draw: st.DrawFn, *, client_to_server: bool) -> bytes:
    """How a peer's stream may end: nothing, a close, a violation, or raw bytes."""
    masked = client_to_server
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return b""
    if choice == 1:
        code = draw(st.sampled_from([1000, 1001, 1003, 1011, 3000, 4999]))
        return frame(fr.OP_CLOSE, fr.close_payload(code, draw(texts)), masked=masked)
    if choice == 2:
        return frame(fr.OP_CLOSE, b"", masked=masked)
    if choice == 3:  # a frame header claiming far more than the limit
        return fr.frame_header(fr.OP_BINARY, 1 << 40, masked=masked) + MASK_KEY * masked
    if choice == 4:  # reserved bits / bad opcode / bad close code / bad UTF-8
        return draw(
            st.sampled_from(
                [
                    frame(fr.OP_BINARY | 0x40, b"x", masked=masked),
                    frame(0x3, b"", masked=masked),
                    frame(fr.OP_CLOSE, b"\x03\xed", masked=masked),
                    frame(fr.OP_TEXT, b"\xff\xfe", masked=masked),
                    frame(fr.OP_CLOSE, b"\x03\xe8\xff", masked=masked),
                    frame(fr.OP_PING, b"x", masked=masked, fin=False),
                    frame(fr.OP_CONTINUATION, b"x", masked=masked),
                    frame(fr.OP_BINARY, b"x", masked=not masked),
                ]
            )
        )
    return draw(st.binary(min_size=1, max_size=30))


@st.composite
def peer_streams(draw: st.DrawFn, *, client_to_server: bool) -> bytes:
    """A whole post-handshake byte stream from a peer."""
    items = draw(st.lists(peer_frames(client_to_server=client_to_server), max_size=8))
    ending = draw(peer_endings(client_to_server=client_to_server))
    trailing = draw(st.binary(max_size=10))
    return b"".join(items) + ending + trailing


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary points (no empty chunks)."""
    if not data:
        return []
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=20))))
    cuts = [c for c in cuts if 0 < c < len(data)]
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def step(conn: BaseConnection, chunk: bytes) -> tuple[list[ev.Event], bytes]:
    """Feed ``chunk`` the way an adapter does: receive, handle events, write, handle again.

    A framing fault found after complete messages in the same read is applied by
    ``apply_pending()`` once their events were handled (so replies to those
    messages precede the Close); its ConnectionClosed event comes after them.
    """
    conn.receive_data(chunk)
    events = conn.events()
    conn.apply_pending()
    out = conn.data_to_send()
    return events + conn.events(), out
