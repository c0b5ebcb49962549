"""The captured Go client session (data/go-session.txt) replayed over TCP to each runtime's server.

The Go client's bytes, exactly as captured (upgrade request, masked frames:
a message, a sync request, subscribe, publish, broadcast, two pings, Close
1000), in the captured order of both directions (each record is sent once the
server's records captured before it have arrived), go to a real server of
each runtime (asyncio on the standard loop, on uvloop, and trio; there is no
blocking server, goomerang_io.sync holds only a client, whose replay is in
test_golden_client_runtimes.py) whose handlers act as the captured Go server
application did (echo; a sync request answered with header ``echo: 1``). What comes back
must be what the Go server sent: a 101 with the captured accept token, then
the same frames, with the same envelopes (kind, payload, headers, uuid,
is_sync) in the same order. Only the envelopes' creation times differ (they
are the server's clock).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest
import trio
from test_golden_session import RECORDS, _stream

from goomerang_io import Server as AsyncioServer
from goomerang_io.loop import run as run_uvloop
from goomerang_io.trio import Server as TrioServer
from goomerang_proto import Message
from goomerang_proto import frames as fr
from goomerang_proto.pb import goomerang_example_pb2 as ex
from goomerang_proto.pb import goomerang_frame_pb2 as pb

RUNTIMES = ["asyncio", "uvloop", "trio"]


def golden_app(sender: Any, message: Message[Any]) -> Any:
    """The captured server application: echo; a sync request's reply has header echo=1 only."""
    headers = {"echo": "1"} if message.is_sync else message.headers
    return sender.send(Message(message.payload, headers))


def exchange(addr: str, interleaved: bool = True) -> bytes:
    """Send the Go client's captured bytes; read until the server closes. Each record waits
    for the server records captured before it (the 101 always; the frames if ``interleaved``,
    else every frame goes at once after the 101)."""
    host, _, port = addr.rpartition(":")
    received = bytearray()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head_due, frames_due = False, 0  # what must have arrived before the next send
        for rec in (r for r in RECORDS if r.kind in ("HTTP", "WS")):
            if rec.direction == "S->C":
                head_due = head_due or rec.kind == "HTTP"
                frames_due += rec.kind == "WS" and interleaved
                continue
            while (head_due and b"\r\n\r\n" not in received) or len(
                frames_of(bytes(received))[1]
            ) < frames_due:
                chunk = sock.recv(65536)
                assert chunk, f"the server closed early: {bytes(received)!r}"
                received += chunk
            sock.sendall(rec.wire)
        while chunk := sock.recv(65536):
            received += chunk
    return bytes(received)


def frames_of(data: bytes) -> tuple[bytes, list[tuple[int, Any]]]:
    """The HTTP response head and the frames after it (envelopes decoded, creation dropped)."""
    head, end_of_head, rest = data.partition(b"\r\n\r\n")
    out: list[tuple[int, bytes]] = []
    if not end_of_head:
        return head, []  # the head is not complete yet
    fr.FrameReader(expect_masked=False, max_message_size=1 << 20).feed(rest, out)
    decoded: list[tuple[int, Any]] = []
    for opcode, payload in out:
        if opcode == fr.OP_BINARY:
            frame = pb.Frame.FromString(payload)
            frame.ClearField("creation")
            decoded.append((opcode, frame))
        else:
            decoded.append((opcode, payload))
    return head, decoded


def serve_asyncio(addr_to_bytes: Callable[[str], bytes], uvloop: bool) -> bytes:
    async def main() -> bytes:
        server = AsyncioServer("127.0.0.1:0", ping_interval=None)
        server.handle(ex.MessageV1, golden_app)
        async with server:
            return await asyncio.wait_for(asyncio.to_thread(addr_to_bytes, server.addr), 20)

    return run_uvloop(main()) if uvloop else asyncio.run(main())


def serve_trio(addr_to_bytes: Callable[[str], bytes]) -> bytes:
    async def main() -> bytes:
        server = TrioServer("127.0.0.1:0")
        server.handle(ex.MessageV1, golden_app)
        with trio.fail_after(20):
            async with server:
                result: bytes = await trio.to_thread.run_sync(addr_to_bytes, server.addr)
                return result

    return trio.run(main)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_server_answers_the_go_client_as_the_go_server_did(runtime: str) -> None:
    if runtime == "trio":
        got = serve_trio(exchange)
    else:
        got = serve_asyncio(exchange, uvloop=runtime == "uvloop")
    want = b"".join(r.wire for r in _stream("S->C"))
    got_head, got_frames = frames_of(got)
    _, want_frames = frames_of(want)
    assert got_head.split(b"\r\n")[0] == b"HTTP/1.1 101 Switching Protocols"
    assert b"Sec-WebSocket-Accept: 8PbzGJa7x0Y957epdLjFueFecjs=" in got_head.split(b"\r\n")
    assert [op for op, _ in got_frames] == [op for op, _ in want_frames]
    assert got_frames == want_frames
    assert got_frames[-1] == (fr.OP_CLOSE, b"\x03\xe8")  # Close 1000, as the Go server sent
