"""The captured Go server (data/go-session.txt) replayed over TCP to each runtime's client.

A raw server plays the Go server's side of the capture: it reads the client's
upgrade request and answers the captured 101 (with the accept token of this
client's key), then, in the captured order, reads each frame the Go client
sent and sends each frame the Go server sent. Each client runtime (asyncio on
the standard loop, on uvloop, the blocking client, trio) does what the
captured Go client did: send, send_sync, subscribe, publish, broadcast,
close. What it sends must match the Go client's frames field by field
(opcode, FIN, masked; the envelope's kind, payload, payload size, headers,
is_sync; the Close body), apart from mask keys, uuids and creation times;
what it delivers (handler messages, the send_sync reply) must be what the Go
server sent. The sync reply goes back with the uuid this client chose. Not
replayed: the two keep-alive pings and their pongs (the Go client's
heartbeat fired at 5 s and 10 s; our clients ping only on their heartbeat
timer, which is off here, and have no public ping()).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
import trio
from test_golden_session import RECORDS, Record

from goomerang_proto import Message
from goomerang_proto import frames as fr
from goomerang_proto.handshake import accept_token
from goomerang_proto.pb import goomerang_example_pb2 as ex
from goomerang_proto.pb import goomerang_frame_pb2 as pb

RUNTIMES = ["asyncio", "uvloop", "blocking", "trio"]
WAIT = 10.0
SCRIPT = [
    r
    for r in RECORDS
    if r.kind == "HTTP" or (r.kind == "WS" and r.opcode not in (fr.OP_PING, fr.OP_PONG))
]


def envelope(payload: bytes) -> pb.Frame:
    """The envelope with what differs per run (uuid, creation) cleared."""
    frame = pb.Frame.FromString(payload)
    frame.ClearField("creation")
    frame.ClearField("uuid")
    return frame


class GoServerReplay:
    """A one-connection raw server that plays the captured Go server (in a thread)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.compared: list[tuple[int, int, bool, Any]] = []  # (opcode, fin, masked, body)
        self.failure: BaseException | None = None
        self.sync_uuid = ""  # the uuid of the client's sync request (its reply carries it)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self.listener, self.listener.accept()[0] as sock:
                sock.settimeout(WAIT)
                self._play(sock)
        except BaseException as exc:
            self.failure = exc

    def _play(self, sock: socket.socket) -> None:
        buf = bytearray()
        for rec in SCRIPT:
            if rec.direction == "C->S" and rec.kind == "HTTP":
                while b"\r\n\r\n" not in buf:
                    buf += self._recv(sock)
                head, _, rest = bytes(buf).partition(b"\r\n\r\n")
                buf = bytearray(rest)
                key = next(
                    line.split(b":", 1)[1].strip().decode()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                )
            elif rec.kind == "HTTP":
                lines = [
                    f"Sec-WebSocket-Accept: {accept_token(key)}"
                    if line.startswith("Sec-WebSocket-Accept:")
                    else line
                    for line in rec.lines
                ]
                sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            elif rec.direction == "C->S":
                opcode, fin, masked, body = self._read_frame(sock, buf)
                if opcode == fr.OP_BINARY:
                    sent = pb.Frame.FromString(body)
                    self.sync_uuid = sent.uuid if sent.is_sync else self.sync_uuid
                    self.compared.append((opcode, fin, masked, envelope(body)))
                else:
                    self.compared.append((opcode, fin, masked, body))
            else:
                wire = rec.wire
                if rec.opcode == fr.OP_BINARY and rec.fields.get("is_sync"):
                    reply = pb.Frame.FromString(rec.payload)
                    reply.uuid = self.sync_uuid  # the reply answers this client's request
                    wire = fr.build_frame(fr.OP_BINARY, reply.SerializeToString())
                sock.sendall(wire)
        sock.shutdown(socket.SHUT_WR)  # the Go server's TCP FIN after its Close

    def _recv(self, sock: socket.socket) -> bytes:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("the client closed early")
        return chunk

    def _read_frame(self, sock: socket.socket, buf: bytearray) -> tuple[int, int, bool, bytes]:
        """One whole frame (no fragments in this session): opcode, FIN, masked, unmasked body."""
        while True:
            if len(buf) >= 2:
                size, at = buf[1] & 0x7F, 2
                if size == 126 and len(buf) >= 4:
                    size, at = int.from_bytes(buf[2:4], "big"), 4
                elif size == 127 and len(buf) >= 10:
                    size, at = int.from_bytes(buf[2:10], "big"), 10
                masked = bool(buf[1] & 0x80)
                end = at + 4 * masked + size
                if size < 126 or at > 2:
                    if len(buf) >= end:
                        body = bytes(buf[at + 4 * masked : end])
                        if masked:
                            body = fr.unmask(body, bytes(buf[at : at + 4]))
                        opcode, fin = buf[0] & 0x0F, buf[0] >> 7
                        del buf[:end]
                        return opcode, fin, masked, body
            buf += self._recv(sock)

    def join(self) -> None:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the replay server did not finish"
        if self.failure is not None:
            raise self.failure


# ------------------------------------------------- the Go client's actions
HELLO = Message(ex.MessageV1(message="hello"), {"k": "v"})
SYNC = Message(ex.MessageV1(message="sync"), {"k": "v"})
PUB = Message(ex.MessageV1(message="pub"), {"k": "v"})
BCAST = Message(ex.MessageV1(message="bcast"), {"k": "v"})
DELIVERED = 3  # the echo of hello, then pub and bcast (the sync reply goes to send_sync)


def asyncio_client(addr: str, got: list[Message[Any]], uvloop: bool) -> Message[Any]:
    from goomerang_io import Client
    from goomerang_io.loop import run as run_uvloop

    async def main() -> Message[Any]:
        delivered = asyncio.Event()

        def on_message(_sender: Any, message: Message[Any]) -> None:
            got.append(message)
            if len(got) == DELIVERED:
                delivered.set()

        client = Client(addr, heartbeat_interval=None)
        client.handle(ex.MessageV1, on_message)
        await client.connect()
        async with asyncio.timeout(WAIT):
            await client.send(HELLO)
            reply = await client.send_sync(SYNC, timeout=WAIT)
            await client.subscribe("t1")
            await client.publish("t1", PUB)
            await client.broadcast(BCAST)
            await delivered.wait()
            await client.close()
        return reply

    return run_uvloop(main()) if uvloop else asyncio.run(main())


def blocking_client(addr: str, got: list[Message[Any]]) -> Message[Any]:
    from goomerang_io.sync import Client

    delivered = threading.Event()

    def on_message(_sender: Any, message: Message[Any]) -> None:
        got.append(message)
        if len(got) == DELIVERED:
            delivered.set()

    client = Client(addr, heartbeat_interval=None)
    client.handle(ex.MessageV1, on_message)
    client.connect()
    try:
        client.send(HELLO)
        reply = client.send_sync(SYNC, timeout=WAIT)
        client.subscribe("t1")
        client.publish("t1", PUB)
        client.broadcast(BCAST)
        assert delivered.wait(WAIT)
    finally:
        client.close()
    return reply


def trio_client(addr: str, got: list[Message[Any]]) -> Message[Any]:
    from goomerang_io.trio import Client

    async def main() -> Message[Any]:
        delivered = trio.Event()

        def on_message(_sender: Any, message: Message[Any]) -> None:
            got.append(message)
            if len(got) == DELIVERED:
                delivered.set()

        client = Client(addr, heartbeat_interval=None)
        client.handle(ex.MessageV1, on_message)
        with trio.fail_after(WAIT):
            async with client:  # close() on exit
                await client.send(HELLO)
                reply = await client.send_sync(SYNC, timeout=WAIT)
                await client.subscribe("t1")
                await client.publish("t1", PUB)
                await client.broadcast(BCAST)
                await delivered.wait()
        return reply

    return trio.run(main)


DRIVERS: dict[str, Callable[[str, list[Message[Any]]], Message[Any]]] = {
    "asyncio": lambda addr, got: asyncio_client(addr, got, uvloop=False),
    "uvloop": lambda addr, got: asyncio_client(addr, got, uvloop=True),
    "blocking": blocking_client,
    "trio": trio_client,
}


def _go(rec: Record, uuid: str | None = None) -> tuple[Any, ...]:
    """What a client must deliver for a Go server frame (``uuid``: as sent, if not the
    captured one)."""
    frame = pb.Frame.FromString(rec.payload)
    payload = ex.MessageV1.FromString(frame.payload)
    return (frame.kind, payload, dict(frame.headers), uuid or frame.uuid, frame.is_sync)


def _delivered(message: Message[Any]) -> tuple[Any, ...]:
    return (message.kind, message.payload, message.headers, message.uuid, message.is_sync)


def test_the_drivers_cover_every_runtime() -> None:
    assert sorted(DRIVERS) == sorted(RUNTIMES)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_client_talks_to_the_go_server_as_the_go_client_did(runtime: str) -> None:
    server = GoServerReplay()
    got: list[Message[Any]] = []
    reply = DRIVERS[runtime](server.addr, got)
    server.join()
    want = [r for r in SCRIPT if r.direction == "C->S" and r.kind == "WS"]
    assert [c[:3] for c in server.compared] == [(r.opcode, 1, True) for r in want]
    for (_, _, _, body), rec in zip(server.compared, want, strict=True):
        assert body == (envelope(rec.payload) if rec.opcode == fr.OP_BINARY else rec.payload)
    go_sent = [r for r in SCRIPT if r.direction == "S->C" and r.opcode == fr.OP_BINARY]
    go_sync = [r for r in go_sent if r.fields.get("is_sync")]
    assert len(go_sync) == 1 and server.sync_uuid
    assert _delivered(reply) == _go(go_sync[0], server.sync_uuid)
    assert [_delivered(m) for m in got] == [_go(r) for r in go_sent if not r.fields.get("is_sync")]
    assert server.compared[-1] == (fr.OP_CLOSE, 1, True, b"\x03\xe8")  # Close 1000, as Go sent
