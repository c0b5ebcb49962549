"""Helpers shared by the engine tests: handshakes, frame builders, event normal forms."""

from __future__ import annotations

import inspect
from typing import Any

from hypothesis import strategies as st

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
from goomerang_proto.testing import strategies as kit

REGISTRY = Registry(ex.MessageV1, ex.ReplyV1)
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK_KEY = kit.MASK_KEY
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


frame = kit.frame


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
    for name in e.__slots__:
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
# The strategies moved into the public kit (goomerang_proto.testing.strategies);
# these names keep the engine tests' imports working.
texts = st.text(max_size=20)
headers_st = st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)
envelopes = kit.envelopes
peer_frames = kit.ws_frames
peer_endings = kit.stream_endings
peer_streams = kit.peer_streams
splits = kit.splits


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
