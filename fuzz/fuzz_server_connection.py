"""Fuzz target: a ServerConnection after a completed handshake never raises on input.

The first input byte picks a chunk size (1-16 bytes, or all at once) so the
incremental paths of the frame reader are fuzzed too; then the remaining
bytes are fed, the output drained, and EOF delivered. Only documented events
may come out, and a close we start carries 1002, 1007 or 1009.

Run with atheris: ``python fuzz/fuzz_server_connection.py [corpus_dir] -max_total_time=N``.
"""

from __future__ import annotations

from goomerang_proto import codec
from goomerang_proto import events as ev
from goomerang_proto import frames as fr
from goomerang_proto.message import Message
from goomerang_proto.pb import goomerang_example_pb2 as ex
from goomerang_proto.registry import Registry
from goomerang_proto.server_connection import ServerConnection
from goomerang_proto.status import Status

REGISTRY = Registry(ex.MessageV1, ex.ReplyV1)
UPGRADE_REQUEST = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
EVENT_TYPES = tuple(
    cls
    for cls in vars(ev).values()
    if isinstance(cls, type) and issubclass(cls, ev.Event) and cls is not ev.Event
)
FAIL_CODES = (fr.CLOSE_PROTOCOL_ERROR, fr.CLOSE_INVALID_DATA, fr.CLOSE_TOO_BIG)


def _running_server() -> ServerConnection:
    conn = ServerConnection(registry=REGISTRY, max_message_size=1 << 16)
    conn.receive_data(UPGRADE_REQUEST)
    conn.events()
    conn.data_to_send()
    assert conn.status is Status.RUNNING
    return conn


def _check(events: list[ev.Event]) -> None:
    for event in events:
        assert isinstance(event, EVENT_TYPES), event
        if isinstance(event, ev.ConnectionClosed) and not event.by_peer:
            assert event.code in FAIL_CODES or event.code == fr.CLOSE_ABNORMAL, event


def test_one_input(data: bytes) -> None:
    """Feed ``data`` to a running server; any exception is a crash."""
    conn = _running_server()
    if not data:
        return
    size = data[0] % 17
    body = data[1:]
    chunks = [body] if size == 0 else [body[i : i + size] for i in range(0, len(body), size)]
    for chunk in chunks:
        conn.receive_data(chunk)
        _check(conn.events())
        conn.apply_pending()
        conn.data_to_send()
        _check(conn.events())
        if conn.should_close_transport():
            break
    conn.receive_eof()
    _check(conn.events())
    assert conn.status is Status.CLOSED and conn.should_close_transport()
    assert conn.data_to_send() == b""


def seeds() -> list[bytes]:
    """Masked client streams to start a corpus from (leading byte: chunk size)."""
    key = b"\x01\x02\x03\x04"
    msg = Message(ex.MessageV1(message="hello"), {"k": "v"})

    def masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
        return fr.build_frame(opcode, payload, mask=True, mask_key=key, fin=fin)

    envelope = codec.pack(msg, creation_ns=1)
    return [
        b"\x00" + masked(fr.OP_BINARY, envelope) + masked(fr.OP_PING, b"ping"),
        b"\x03" + masked(fr.OP_BINARY, codec.pack_publish_cmd("t1", msg)),
        b"\x00"
        + masked(fr.OP_BINARY, envelope[:10], fin=False)
        + masked(fr.OP_PING, b"")
        + masked(fr.OP_CONTINUATION, envelope[10:]),
        b"\x05" + masked(fr.OP_TEXT, "héllo".encode()) + masked(fr.OP_CLOSE, b"\x03\xe8"),
        b"\x00" + masked(fr.OP_BINARY, codec.pack_subscribe_cmd("t")),
    ]


if __name__ == "__main__":
    from atheris_main import fuzz

    fuzz(test_one_input)
