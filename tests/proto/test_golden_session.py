"""Golden vectors: a captured Go goomerang v0.3.0 session (data/go-session.txt).

Every envelope must decode to the fields the capture shows, what we pack for
the same message (same creation time and uuid) must be byte-identical, and
replaying the captured byte streams through our engines must give the same
events and, with the same clock and mask keys, the very same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from goomerang_proto import codec
from goomerang_proto import events as ev
from goomerang_proto import frames as fr
from goomerang_proto.client_connection import ClientConnection
from goomerang_proto.handshake import accept_token
from goomerang_proto.message import Message
from goomerang_proto.pb import goomerang_example_pb2 as ex
from goomerang_proto.pb import goomerang_frame_pb2 as pb
from goomerang_proto.registry import Registry
from goomerang_proto.server_connection import ServerConnection, prepare
from goomerang_proto.status import Status

GOLDEN = Path(__file__).parent / "data" / "go-session.txt"
REGISTRY = Registry(ex.MessageV1, ex.ReplyV1, ex.BadReplyV1)
CLIENT_KEY = "LmQzeUDjshxP5ywT5wFMHA=="

_RECORD = re.compile(r"^\s*(\d+\.\d+) (C->S|S->C) \[conn :\d+\] (.*)$")
_WS = re.compile(r"WS fin=(\d) opcode=(\d+)\(\w+\) masked=(\d)(?: key=([0-9a-f]{8}))? len=(\d+)")
_HDR = re.compile(r"hdr=([0-9a-f]+)")
_FIELD = re.compile(r"^\s+(\d) (\w+)(.*)$")
_PAYLOAD_HEX = re.compile(r"^\s+(?:unmasked payload hex: |(?:close )?payload hex=)([0-9a-f]*)")
_STR_FIELD = re.compile(r"(\w+)='([^']*)'")
_INNER = re.compile(r"message=<(\w+) \{message='([^']*)'\}>")


@dataclass
class Record:
    """One captured event: an HTTP message or a WebSocket frame."""

    t: float
    direction: str
    kind: str  # "HTTP", "WS" or "TCP"
    lines: list[str] = field(default_factory=list)
    opcode: int = -1
    hdr: bytes = b""
    payload: bytes = b""
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def wire(self) -> bytes:
        """The frame's bytes as they were on the wire (masked again when the client sent it)."""
        if self.kind == "HTTP":
            return ("\r\n".join(self.lines) + "\r\n\r\n").encode("latin-1")
        body = self.payload
        if self.hdr[1] & 0x80:
            body = fr.unmask(body, self.hdr[-4:])
        return self.hdr + body


def _parse_fields(lines: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"headers": {}}
    for line in lines:
        m = _FIELD.match(line)
        if not m:
            continue
        name, rest = m.group(2), m.group(3)
        if name == "uuid" or name == "kind":
            out[name] = rest[2:-1]  # ='...'
        elif name == "payloadSize" or name == "is_sync":
            out[name] = int(rest[1:])
        elif name == "creation":
            cm = re.match(r"=\{seconds:(\d+) nanos:(\d+)\}", rest)
            assert cm, line
            out["seconds"], out["nanos"] = int(cm.group(1)), int(cm.group(2))
        elif name == "headers":
            hm = re.match(r"\['([^']*)'\]='([^']*)'", rest)
            assert hm, line
            out["headers"][hm.group(1)] = hm.group(2)
        elif name == "payload":
            body = rest[rest.index("{") :]
            inner = _INNER.search(body)
            if inner:
                out["inner"] = (inner.group(1), inner.group(2))
                body = _INNER.sub("", body)
            out["payload_fields"] = dict(_STR_FIELD.findall(body))
    return out


def parse_golden(path: Path = GOLDEN) -> list[Record]:
    """Parse the decoded capture into records, in capture order."""
    records: list[Record] = []
    for line in path.read_text().splitlines():
        m = _RECORD.match(line)
        if m:
            kind = m.group(3).split(" ")[0].rstrip(":")
            rec = Record(float(m.group(1)), m.group(2), kind)
            if kind == "WS":
                ws = _WS.search(m.group(3))
                hdr = _HDR.search(m.group(3))
                assert ws and hdr, line
                rec.opcode = int(ws.group(2))
                rec.hdr = bytes.fromhex(hdr.group(1))
            records.append(rec)
            continue
        rec = records[-1]
        if rec.kind == "HTTP":
            rec.lines.append(line.strip())
            continue
        pm = _PAYLOAD_HEX.match(line)
        if pm:
            rec.payload = bytes.fromhex(pm.group(1))
        else:
            rec.lines.append(line)
    for rec in records:
        if rec.kind == "WS" and rec.opcode == fr.OP_BINARY:
            rec.fields = _parse_fields(rec.lines)
    return records


RECORDS = parse_golden()
ENVELOPES = [r for r in RECORDS if r.kind == "WS" and r.opcode == fr.OP_BINARY]


def _ns(rec: Record) -> int:
    return int(rec.fields["seconds"]) * 1_000_000_000 + int(rec.fields["nanos"])


def _ids(recs: list[Record]) -> list[str]:
    return [f"{r.t:.3f}-{r.direction}-{r.fields.get('kind', '?').rsplit('.', 1)[-1]}" for r in recs]


def test_capture_parsed_completely() -> None:
    kinds = [(r.direction, r.kind, r.opcode) for r in RECORDS if r.kind != "TCP"]
    assert kinds[:2] == [("C->S", "HTTP", -1), ("S->C", "HTTP", -1)]
    assert [r.direction for r in ENVELOPES] == ["C->S", "S->C"] * 2 + ["C->S"] * 2 + [
        "S->C",
        "C->S",
        "S->C",
    ]
    pings = [r for r in RECORDS if r.opcode == fr.OP_PING]
    assert [p.payload for p in pings] == [b"ping", b"ping"]
    for rec in RECORDS:
        if rec.kind == "WS":
            # The header's length field agrees with the payload we parsed.
            length = rec.hdr[1] & 0x7F
            assert length == len(rec.payload) < 126


@pytest.mark.parametrize("rec", ENVELOPES, ids=_ids(ENVELOPES))
def test_envelope_decodes_to_the_captured_fields(rec: Record) -> None:
    f = rec.fields
    frame = codec.decode_frame(rec.payload)
    assert frame.kind == f["kind"]
    assert frame.uuid == f.get("uuid", "")
    assert frame.payloadSize == f["payloadSize"] == len(frame.payload)
    assert frame.is_sync is bool(f.get("is_sync", 0))
    assert (frame.creation.seconds, frame.creation.nanos) == (f["seconds"], f["nanos"])
    assert dict(frame.headers) == f["headers"]
    inner = f["payload_fields"]
    if frame.kind in codec.COMMAND_KINDS:
        cls: Any = {
            codec.PUBLISH_CMD: pb.PublishCmd,
            codec.BROADCAST_CMD: pb.BroadcastCmd,
            codec.SUBSCRIBE_CMD: pb.SubscribeCmd,
            codec.UNSUBSCRIBE_CMD: pb.UnsubscribeCmd,
        }[frame.kind]
        cmd: Any = cls.FromString(frame.payload)
        for name, value in inner.items():
            assert getattr(cmd, name) == value
        if "inner" in f:
            got = codec.decode_command_message(cmd.kind, cmd.message, dict(frame.headers), REGISTRY)
            assert (type(got.payload).__name__, got.payload.message) == f["inner"]
            assert got.headers == {k[len("message-") :]: v for k, v in f["headers"].items()}
        return
    msg = codec.unpack(rec.payload, REGISTRY)
    assert msg.payload.message == inner["message"]
    assert msg.creation_ns == _ns(rec)
    assert msg.uuid == f.get("uuid", "") and msg.is_sync is bool(f.get("is_sync", 0))


def _repack(rec: Record) -> bytes:
    f = rec.fields
    ns = _ns(rec)
    kind = f["kind"]
    if kind == codec.SUBSCRIBE_CMD:
        return codec.pack_subscribe_cmd(f["payload_fields"]["topic"], creation_ns=ns)
    if kind in (codec.PUBLISH_CMD, codec.BROADCAST_CMD):
        cls_name, text = f["inner"]
        headers = codec.strip_command_headers(f["headers"])
        msg = Message(getattr(ex, cls_name)(message=text), headers)
        if kind == codec.BROADCAST_CMD:
            return codec.pack_broadcast_cmd(msg, creation_ns=ns)
        return codec.pack_publish_cmd(f["payload_fields"]["topic"], msg, creation_ns=ns)
    msg = Message(ex.MessageV1(message=f["payload_fields"]["message"]), dict(f["headers"]))
    return codec.pack(
        msg, uuid=f.get("uuid", ""), is_sync=bool(f.get("is_sync", 0)), creation_ns=ns
    )


@pytest.mark.parametrize("rec", ENVELOPES, ids=_ids(ENVELOPES))
def test_what_we_pack_is_byte_identical(rec: Record) -> None:
    assert _repack(rec) == rec.payload


def test_captured_handshake_accept_token() -> None:
    request, response = RECORDS[2], RECORDS[3]
    assert f"Sec-WebSocket-Key: {CLIENT_KEY}" in request.lines
    assert f"Sec-WebSocket-Accept: {accept_token(CLIENT_KEY)}" in response.lines


def _stream(direction: str) -> Iterator[Record]:
    return (r for r in RECORDS if r.direction == direction and r.kind in ("HTTP", "WS"))


def _server_expected_kinds() -> list[type[ev.Event]]:
    return [
        ev.Connected,
        ev.MessageReceived,
        ev.SyncRequestReceived,
        ev.SubscribeRequested,
        ev.PublishRequested,
        ev.BroadcastRequested,
        ev.PingReceived,
        ev.PingReceived,
        ev.ConnectionClosed,
    ]


def test_client_stream_through_a_server_in_one_chunk() -> None:
    client_bytes = b"".join(r.wire for r in _stream("C->S"))
    server = ServerConnection(registry=REGISTRY)
    server.receive_data(client_bytes)
    events = server.events()
    assert [type(e) for e in events] == _server_expected_kinds()
    closed = events[-1]
    assert isinstance(closed, ev.ConnectionClosed)
    assert (closed.code, closed.by_peer, closed.error) == (1000, True, None)
    sub, pub, bcast = events[3], events[4], events[5]
    assert isinstance(sub, ev.SubscribeRequested) and sub.topic == "t1"
    assert isinstance(pub, ev.PublishRequested) and pub.topic == "t1"
    assert pub.message == Message(ex.MessageV1(message="pub"), {"k": "v"})
    assert isinstance(bcast, ev.BroadcastRequested)
    assert bcast.message == Message(ex.MessageV1(message="bcast"), {"k": "v"})
    server.apply_pending()
    out = server.data_to_send()
    response, _, frames_out = out.partition(b"\r\n\r\n")
    assert f"Sec-WebSocket-Accept: {accept_token(CLIENT_KEY)}".encode() in response.split(b"\r\n")
    assert b"Sec-WebSocket-Accept: 8PbzGJa7x0Y957epdLjFueFecjs=" in response
    assert frames_out == b"\x8a\x04ping" * 2 + b"\x88\x02\x03\xe8"
    assert server.status is Status.CLOSED and server.should_close_transport()


class _Clock:
    """Hands out the captured creation times, one per packed frame."""

    def __init__(self, values: list[int]) -> None:
        self.values = values

    def __call__(self) -> int:
        return self.values.pop(0)


def test_server_replays_the_go_server_byte_for_byte() -> None:
    """Act as the captured server application: the output equals the Go server's bytes."""
    server_envelopes = [r for r in ENVELOPES if r.direction == "S->C"]
    clock = _Clock([_ns(r) for r in server_envelopes])
    server = ServerConnection(registry=REGISTRY, clock=clock)
    out = bytearray()
    for rec in _stream("C->S"):
        server.receive_data(rec.wire)
        for event in server.events():
            if isinstance(event, ev.MessageReceived):
                server.send(event.message)  # echo
            elif isinstance(event, ev.SyncRequestReceived):
                reply = Message(event.message.payload, {"echo": "1"})
                server.send(reply, uuid=event.message.uuid, is_sync=True)
            elif isinstance(event, ev.PublishRequested | ev.BroadcastRequested):
                server.send_prepared(prepare(event.message, creation_ns=clock()))
        server.apply_pending()
        out += server.data_to_send()
    expected = b"".join(r.wire for r in _stream("S->C"))
    assert bytes(out) == expected
    assert not clock.values


@pytest.mark.pure_python  # replaces an engine method or global: see tests/conftest.py
def test_client_replays_the_go_client_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drive our client like the captured one: its frames equal the Go client's bytes."""
    client_frames = [r for r in _stream("C->S") if r.kind == "WS"]
    keys = [r.hdr[-4:] for r in client_frames]

    class _FixedKeys:
        """The captured keys, in order, as the one urandom read that MaskKeys makes."""

        reads = 0

        @staticmethod
        def urandom(n: int) -> bytes:
            _FixedKeys.reads += 1
            assert n == 1024 and len(keys) <= 256 and _FixedKeys.reads == 1
            return b"".join(keys).ljust(n, b"\0")

    monkeypatch.setattr(fr, "os", _FixedKeys)
    clock = _Clock([_ns(r) for r in ENVELOPES if r.direction == "C->S"])
    client = ClientConnection("127.0.0.1:19092", registry=REGISTRY, clock=clock, key=CLIENT_KEY)
    client.data_to_send()  # our upgrade request (header order differs from Go's)
    received: list[ev.Event] = []
    out = bytearray()
    server_records = list(_stream("S->C"))
    client.receive_data(server_records[0].wire)  # the 101 response
    received += client.events()
    assert client.status is Status.RUNNING
    hello = Message(ex.MessageV1(message="hello"), {"k": "v"})
    client.send(hello)
    client.send_sync(
        Message(ex.MessageV1(message="sync"), {"k": "v"}), client_frames[1].fields["uuid"]
    )
    client.subscribe("t1")
    client.publish("t1", Message(ex.MessageV1(message="pub"), {"k": "v"}))
    client.broadcast(Message(ex.MessageV1(message="bcast"), {"k": "v"}))
    client.ping()
    client.ping()
    client.close()
    client.apply_pending()
    out += client.data_to_send()
    assert bytes(out) == b"".join(r.wire for r in client_frames)
    for rec in server_records[1:]:
        client.receive_data(rec.wire)
    client.receive_eof()  # the server's TCP FIN
    received += client.events()
    assert [type(e) for e in received] == [
        ev.Connected,
        ev.MessageReceived,
        ev.SyncReplyReceived,
        ev.MessageReceived,
        ev.MessageReceived,
        ev.PongReceived,
        ev.PongReceived,
        ev.ConnectionClosed,
    ]
    reply = received[2]
    assert isinstance(reply, ev.SyncReplyReceived)
    assert reply.message.uuid == client_frames[1].fields["uuid"]
    assert reply.message.headers == {"echo": "1"}
    closed = received[-1]
    assert isinstance(closed, ev.ConnectionClosed) and closed.code == 1000
    assert not closed.by_peer
    assert client.status is Status.CLOSED  # type: ignore[comparison-overlap]
    assert client.should_close_transport()
    assert client.data_to_send() == b""
