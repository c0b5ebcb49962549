"""aiohttp plain binary echo server on uvloop (path ``/``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from _serve import main
from aiohttp import WSMsgType, web


async def echo(request: web.Request) -> web.WebSocketResponse:
    """Echo every binary message back to its sender."""
    ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def start(port: int) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Listen on 127.0.0.1:port; return the bound port and a closer."""
    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close() -> None:
        await runner.cleanup()

    return bound, close


if __name__ == "__main__":
    main("ws", "/", start)
