"""Big reads are fed to the engine in slices (``FEED_CHUNK``); nothing changes for the peer.

The asyncio driver feeds a read larger than ``FEED_CHUNK`` slice by slice,
handling each slice's messages before decoding the next (less held at once,
less cyclic-GC work). A peer that writes hundreds of kilobytes at once, with
frames of every size straddling the slice boundaries and a framing fault at
the very end, still gets every echo, in order, before the Close for the fault.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rawws import RawPeer
from util import WAIT, echo, new_server, run, running

from goomerang_io.asyncio.connection import FEED_CHUNK
from goomerang_proto import Message
from goomerang_proto.codec import pack, unpack
from goomerang_proto.frames import (
    CLOSE_PROTOCOL_ERROR,
    OP_BINARY,
    OP_CLOSE,
    build_frame,
    parse_close_payload,
)
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1
from goomerang_proto.registry import Registry

pytestmark = pytest.mark.timeout(60)
REGISTRY = Registry(MessageV1, ReplyV1)


@pytest.mark.parametrize("sizes", [(1,), (97, 5000, 13), (FEED_CHUNK - 60, 7, FEED_CHUNK + 1)])
def test_one_big_write_is_echoed_in_order_then_closed_for_the_fault(sizes: tuple[int, ...]) -> None:
    async def main() -> None:
        # output never reaches high water here: every reply is written before the Close
        server = new_server(max_message_size=1 << 20, write_limit=8 << 20, slow_client_limit=0)
        server.handle(MessageV1, echo)
        async with running(server):
            peer = await RawPeer.connect(server.addr)
            texts: list[str] = []
            parts: list[bytes] = []
            total = 0
            while len(texts) < 300 or total <= 5 * FEED_CHUNK:
                text = f"{len(texts)}:" + "x" * sizes[len(texts) % len(sizes)]
                frame = build_frame(OP_BINARY, pack(Message(MessageV1(message=text))), mask=True)
                texts.append(text)
                parts.append(frame)
                total += len(frame)
            blob = b"".join(parts)
            assert len(blob) > 4 * FEED_CHUNK
            peer.send_raw(blob + b"\x8f\x80\x00\x00\x00\x00")  # opcode 0xF: reserved
            got: list[str] = []
            code: Any = None
            async with asyncio.timeout(WAIT * 4):
                while code is None:
                    frames = await peer.next_frames()
                    assert frames, "EOF before the Close frame"
                    for opcode, payload in frames:
                        if opcode == OP_CLOSE:
                            code = parse_close_payload(payload)[0]
                            break
                        assert opcode == OP_BINARY
                        got.append(unpack(payload, REGISTRY).payload.message)
            assert (len(got), code) == (len(texts), CLOSE_PROTOCOL_ERROR)
            assert got == texts
            peer.abort()

    run(main())
