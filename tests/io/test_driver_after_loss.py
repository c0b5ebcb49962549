"""The asyncio driver after its transport is gone: nothing touches the dead transport.

An async handler that waited on drain for a peer that stopped reading can end
after the peer dropped TCP; its end wakes the connection, which flushes. Any
flush, write or close after ``connection_lost`` must do nothing instead of
calling ``write_eof``/``write`` on the closed transport (uvloop raises
"unable to perform operation on <TCPTransport closed=True>").
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rawws import RawPeer
from util import WAIT, msg, new_server, run, running

from goomerang_io import Message, Sender
from goomerang_proto.codec import pack
from goomerang_proto.frames import OP_BINARY
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

pytestmark = pytest.mark.timeout(60)


def test_flush_and_close_after_the_transport_is_gone_do_nothing() -> None:
    async def main() -> None:
        conns: asyncio.Queue[Any] = asyncio.Queue()
        server = new_server()

        def keep(sender: Sender, message: Message[Any]) -> None:
            conns.put_nowait(sender.connection)

        server.handle(MessageV1, keep)
        async with running(server):
            peer = await RawPeer.connect(server.addr)
            peer.send_frame(OP_BINARY, pack(msg()))
            conn = await asyncio.wait_for(conns.get(), WAIT)
            peer.abort()  # RST
            await asyncio.wait_for(asyncio.shield(conn.closed), WAIT)
            # what a handler ending now would make the connection do
            conn.flush()
            conn.close(1000)
            conn.abort()
            assert conn.transport is None

    run(main())
