"""The TCP floor: a raw uvloop echo server, 4-byte big-endian length prefix.

Protocol-based (no streams): every ``data_received`` call scans the buffer for
complete frames and writes them back in one ``write``, which is the least work
any message server on this loop can do per message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from _serve import main


class FloorEcho(asyncio.Protocol):
    """Echo every complete length-prefixed frame back, unchanged."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's own Transport class

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
            assert self.transport is not None
            self.transport.write(bytes(buf[:i]))
            del buf[:i]


async def start(port: int) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Listen on 127.0.0.1:port; return the bound port and a closer."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FloorEcho, "127.0.0.1", port)

    async def close() -> None:
        server.close()

    return server.sockets[0].getsockname()[1], close


if __name__ == "__main__":
    main("tcp", "", start)
