"""The TCP floor: a raw uvloop echo server, 4-byte big-endian length prefix.

Protocol-based (no streams). By default it writes each complete message back
as soon as it is parsed (one ``transport.write`` per message, like any echo
server that handles messages one by one); ``--batch`` instead scans every
``data_received`` buffer and writes all complete messages back in one
``write``, the least work any message server on this loop can do.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from _serve import main


class FloorEcho(asyncio.Protocol):
    """Echo every complete length-prefixed frame back, unchanged, one write each."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.write: Callable[[bytes], None] = print

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's own Transport class
        self.write = transport.write  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        end = len(buf)
        i = 0
        while end - i >= 4:
            size = int.from_bytes(buf[i : i + 4], "big")
            if end - i - 4 < size:
                break
            self.write(bytes(buf[i : i + 4 + size]))
            i += 4 + size
        if i:
            del buf[:i]


class BatchEcho(FloorEcho):
    """Echo all complete frames of one read in a single write."""

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        end = len(buf)
        i = 0
        while end - i >= 4:
            size = int.from_bytes(buf[i : i + 4], "big")
            if end - i - 4 < size:
                break
            i += 4 + size
        if i:
            self.write(bytes(buf[:i]))
            del buf[:i]


async def start(port: int) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Listen on 127.0.0.1:port; return the bound port and a closer."""
    loop = asyncio.get_running_loop()
    factory = BatchEcho if "--batch" in sys.argv else FloorEcho
    server = await loop.create_server(factory, "127.0.0.1", port)

    async def close() -> None:
        server.close()

    return server.sockets[0].getsockname()[1], close


if __name__ == "__main__":
    main("tcp", "", start, flags=("--batch",))
