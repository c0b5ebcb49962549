"""picows plain binary echo server on uvloop (path ``/``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from _serve import main
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server


class Echo(WSListener):
    """Echo data frames; answer a close with a close and disconnect."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.BINARY, WSMsgType.TEXT):
            transport.send(frame.msg_type, frame.get_payload_as_memoryview())


def _factory(request: WSUpgradeRequest) -> WSListener:
    return Echo()


async def start(port: int) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Listen on 127.0.0.1:port; return the bound port and a closer."""
    server = await ws_create_server(_factory, "127.0.0.1", port)

    async def close() -> None:
        server.close()

    return server.sockets[0].getsockname()[1], close


if __name__ == "__main__":
    main("ws", "/", start)
