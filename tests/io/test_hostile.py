"""Hostile input over real sockets while a healthy client keeps exchanging messages.

Every scenario runs next to a healthy asyncio Client doing sync round trips on
the same server; it must see no error and lose no message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hookwait import HookWait
from rawws import RawPeer, http_exchange, split_addr, upgrade_request
from serverproc import ServerProcess
from util import run

from goomerang_io import Client, Server
from goomerang_proto import Message, new_uuid
from goomerang_proto.codec import pack, pack_envelope
from goomerang_proto.frames import OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

WAIT = 5.0


def echo(sender: Any, message: Message[Any]) -> Any:
    return sender.send(Message(ReplyV1(message=message.payload.message), message.headers))


class Healthy:
    """A client doing sync round trips in a loop; counts them and its errors."""

    def __init__(self, addr: str) -> None:
        self.errors: list[BaseException] = []
        self.client = Client(addr, heartbeat_interval=None, on_error=self.errors.append)
        self.client.register_message(ReplyV1)
        self.sent = 0
        self.ok = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            text = f"healthy-{self.sent}"
            reply = await self.client.send_sync(Message(MessageV1(message=text)), timeout=WAIT)
            assert reply.payload.message == text
            self.ok += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> Healthy:
        await self.client.connect()
        self._task = asyncio.ensure_future(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, WAIT)  # re-raises a failed round trip
        await self.client.close()
        assert self.errors == []
        assert self.ok == self.sent > 0


@contextlib.asynccontextmanager
async def serving(**kwargs: Any) -> AsyncIterator[tuple[Server, list[BaseException]]]:
    errors: list[BaseException] = []
    server = Server("127.0.0.1:0", on_error=errors.append, **kwargs)
    server.handle(MessageV1, echo)
    server.register_message(ReplyV1)
    await server.start()
    try:
        yield server, errors
    finally:
        await server.shutdown(timeout=2.0)


def masked_header(opcode: int, length: int, *, fin: bool = True) -> bytes:
    b0 = (0x80 if fin else 0) | opcode
    if length < 126:
        head = bytes((b0, 0x80 | length))
    elif length < 0x10000:
        head = bytes((b0, 0x80 | 126)) + struct.pack("!H", length)
    else:
        head = bytes((b0, 0x80 | 127)) + struct.pack("!Q", length)
    return head + os.urandom(4)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("oversized_length_header", 1009),
        ("unmasked_client_frame", 1002),
        ("fragmented_control_frame", 1002),
        ("invalid_utf8_close_reason", 1007),
    ],
)
def test_framing_faults_close_with_the_right_code(name: str, expected: int) -> None:
    async def main() -> None:
        async with serving() as (server, _errors), Healthy(server.addr):
            peer = await RawPeer.connect(server.addr)
            if name == "oversized_length_header":
                # Only the header: the server must answer before any payload byte.
                peer.send_raw(masked_header(OP_BINARY, 1 << 40))
            elif name == "unmasked_client_frame":
                peer.send_frame(OP_BINARY, pack(Message(MessageV1(message="x"))), mask=False)
            elif name == "fragmented_control_frame":
                peer.send_frame(OP_PING, b"ping", fin=False)
            else:
                peer.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff\xfe\xfd")
            assert await peer.close_code() == expected
            assert await peer.eof()

    run(main())


def test_goomerang_level_garbage_keeps_the_connection_and_reports() -> None:
    async def main() -> None:
        async with serving() as (server, errors), Healthy(server.addr):
            peer = await RawPeer.connect(server.addr)
            unknown = pack_envelope("goomerang.example.NoSuchV9", b"\x0a\x01x", {})
            peer.send_frame(OP_BINARY, unknown)  # unknown kind
            peer.send_frame(OP_BINARY, b"\xff\xff\xff\xff garbage")  # malformed envelope
            bad_payload = pack_envelope("goomerang.example.MessageV1", b"\xff\xff\xff", {})
            peer.send_frame(OP_BINARY, bad_payload)  # malformed payload
            peer.send_frame(OP_TEXT, b"hello as text")  # text frame
            uid = new_uuid()
            peer.send_frame(
                OP_BINARY, pack(Message(MessageV1(message="still here")), uuid=uid, is_sync=True)
            )
            frames = await peer.next_frames()
            assert frames and frames[0][0] == OP_BINARY  # the reply: connection alive
            assert uid.encode() in frames[0][1]
            assert len(errors) == 4, errors
            peer.abort()

    run(main())


def test_truncated_frames_then_eof() -> None:
    async def main() -> None:
        async with serving() as (server, _errors), Healthy(server.addr):
            hooks = HookWait().watch(server, "on_disconnect")
            for cut in (1, 2, 5, 10, 30):
                peer = await RawPeer.connect(server.addr)
                frame = masked_header(OP_BINARY, 200) + os.urandom(200)
                peer.send_raw(frame[:cut])
                peer.writer.write_eof()
                assert await peer.eof()
            await hooks.until(lambda: server.connections() == 1, WAIT)

    run(main())


def test_slowloris_handshake_is_closed_after_handshake_timeout() -> None:
    async def main() -> None:
        async with serving(handshake_timeout=0.3) as (server, errors), Healthy(server.addr):
            host, port = split_addr(server.addr)
            reader, writer = await asyncio.open_connection(host, port)
            t0 = time.monotonic()
            request = upgrade_request(server.addr)
            writer.write(request[:20])  # then nothing more: a slowloris
            async with asyncio.timeout(WAIT):
                try:
                    data = await reader.read()
                except ConnectionError:
                    data = b""
            elapsed = time.monotonic() - t0
            assert data == b""
            assert 0.25 <= elapsed < 3.0
            assert any("handshake" in str(e) for e in errors)
            writer.transport.abort()

    run(main())


def test_connection_flood_past_max_connections_gets_503() -> None:
    async def main() -> None:
        async with serving(max_connections=5) as (server, _errors), Healthy(server.addr):
            hooks = HookWait().watch(server, "on_disconnect")
            peers = [await RawPeer.connect(server.addr) for _ in range(4)]  # 5 with Healthy
            for _ in range(20):
                status, _head = await http_exchange(server.addr, upgrade_request(server.addr))
                assert status == 503
            peers.pop().abort()
            await hooks.until(lambda: server.connections() == 4, WAIT)
            peers.append(await RawPeer.connect(server.addr))  # room again
            for p in peers:
                p.abort()

    run(main())


def _random_stream(rng: random.Random, addr: str) -> tuple[bool, bytes]:
    """(upgrade first?, bytes to send): HTTP garbage, or random frames after an upgrade."""
    style = rng.randrange(4)
    n = rng.randrange(1, 600)
    junk = rng.randbytes(n)
    if style == 0:
        return False, junk
    if style == 1:
        return False, upgrade_request(addr)[: rng.randrange(1, 120)] + junk
    if style == 2:
        return True, junk
    # A plausible frame header (masked, random opcode/length) and a random body.
    head = bytes((rng.randrange(256), 0x80 | rng.randrange(128))) + rng.randbytes(12)
    return True, head + junk


async def _hostile_connection(addr: str, upgrade: bool, data: bytes) -> None:
    host, port = split_addr(addr)
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return
    try:
        async with asyncio.timeout(WAIT):
            if upgrade:
                writer.write(upgrade_request(addr))
                await reader.readuntil(b"\r\n\r\n")
            writer.write(data)
            writer.write_eof()
            while await reader.read(65536):
                pass
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        pass
    finally:
        writer.transport.abort()


@pytest.mark.timeout(90)
def test_random_byte_streams_leave_the_server_healthy_and_bounded() -> None:
    rng = random.Random(20261127)
    with ServerProcess(handshake_timeout=1.0) as proc:

        async def main() -> tuple[int, int]:
            async with Healthy(proc.addr) as healthy:
                # Warm up allocator and caches with a first batch before measuring.
                batch = [_random_stream(rng, proc.addr) for _ in range(100)]
                await asyncio.gather(*(_hostile_connection(proc.addr, u, d) for u, d in batch))
                before = proc.rss_kb()
                t0 = time.monotonic()
                for _ in range(19):
                    batch = [_random_stream(rng, proc.addr) for _ in range(100)]
                    await asyncio.gather(*(_hostile_connection(proc.addr, u, d) for u, d in batch))
                elapsed = time.monotonic() - t0
                after = proc.rss_kb()
                print(
                    f"\n2000 hostile connections in {elapsed + 0.0:.1f} s; server RSS "
                    f"{before} kB -> {after} kB; healthy round trips {healthy.ok}"
                )
                assert healthy.ok > 0
            return before, after

        before, after = run(main(), timeout=80)
        drained = proc.wait_connections(0)  # woken by the child's disconnect hook
        assert drained["connections"] == 0 and "timeout" not in drained, drained
    assert after - before < 40_000, (before, after)
