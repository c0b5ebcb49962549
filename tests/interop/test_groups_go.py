"""Queue groups against the Go goomerang v0.3.0 server: refused locally, never sent.

The Go server does not echo ``Goomerang-Extensions``, so a group subscribe on
our clients raises ``ExtensionNotNegotiated`` before anything is written (the
Go server would otherwise keep the member as a plain subscriber, silently).
"""

from __future__ import annotations

import asyncio

import pytest
from goref_peers import go_server

from goomerang_io import Client
from goomerang_io.loop import run
from goomerang_io.sync import Client as SyncClient
from goomerang_proto import Message
from goomerang_proto.extensions import ExtensionNotNegotiated
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1


def test_a_group_subscribe_is_refused_against_the_go_server() -> None:
    server = go_server()
    try:

        async def main() -> None:
            client = Client(server.addr, heartbeat_interval=None)
            client.register_message(MessageV1)
            await asyncio.wait_for(client.connect(), 10)
            engine = client._engine
            assert engine is not None and "queue-groups" not in engine.extensions
            with pytest.raises(ExtensionNotNegotiated):
                await client.subscribe("t", group="g")
            with pytest.raises(ExtensionNotNegotiated):
                await client.unsubscribe("t", group="g")
            await client.subscribe("t")  # a plain subscribe is still sent
            reply = await client.send_sync(Message(MessageV1(message="alive")), timeout=10)
            assert reply.payload.message == "alive"
            await client.close()

        run(main())
        with SyncClient(server.addr, heartbeat_interval=None) as c:
            with pytest.raises(ExtensionNotNegotiated):
                c.subscribe("t", group="g")
            c.subscribe("t")
    finally:
        server.terminate()
