"""websockets (asyncio implementation) plain binary echo server on uvloop (path ``/``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from _serve import main
from websockets.asyncio.server import ServerConnection, serve


async def echo(ws: ServerConnection) -> None:
    """Echo every message back to its sender."""
    async for msg in ws:
        await ws.send(msg)


async def start(port: int) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Listen on 127.0.0.1:port; return the bound port and a closer."""
    server = await serve(
        echo, "127.0.0.1", port, compression=None, ping_interval=None, max_size=1 << 20
    )

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return server.sockets[0].getsockname()[1], close  # type: ignore[index]


if __name__ == "__main__":
    main("ws", "/", start)
