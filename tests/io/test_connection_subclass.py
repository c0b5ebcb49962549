"""A Python subclass of the asyncio driver ``Connection`` (compiled in the compiled build, with
interpreted subclasses allowed): it overrides the hooks and feeds any bytes-like read."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from goomerang_io.asyncio.connection import Connection
from goomerang_proto import ClientConnection, ServerConnection
from goomerang_proto import events as ev
from goomerang_proto.status import RUNNING

pytestmark = pytest.mark.timeout(30)


class Recording(Connection):
    """Records what the driver hands its hooks."""

    def __init__(self) -> None:
        super().__init__(ServerConnection())
        self.seen: list[ev.Event] = []
        self.reads = 0

    def handle_events(self, events: list[ev.Event]) -> None:
        self.seen.extend(events)

    def after_read(self) -> None:
        self.reads += 1


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_a_python_subclass_gets_its_hooks_called_for_any_bytes_like_read(kind: Any) -> None:
    async def main() -> None:
        request = ClientConnection("127.0.0.1:1").data_to_send()  # a WebSocket upgrade
        conn = Recording()
        conn.data_received(kind(request))
        assert [type(e) for e in conn.seen] == [ev.Connected]
        assert conn.reads == 1
        assert conn.engine.status is RUNNING
        assert isinstance(conn, asyncio.Protocol)

    asyncio.run(main())
