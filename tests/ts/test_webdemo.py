"""``goomerang demo --web``'s server: the page's files on the server's own port.

The page itself (a TypeScript bundle) is exercised by the browser test in
clients/typescript/test/browser/; this checks the Python side on its own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from goomerang_io import Client, Message
from goomerang_io.webdemo import build_web_server
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1


async def _get(addr: str, path: str) -> bytes:
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


def test_missing_page_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make ts-build"):
        build_web_server("127.0.0.1:0", tmp_path)


def test_serves_the_page_and_answers_sync_requests(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>chat</p>")
    (tmp_path / "demo.js").write_text("console.log(1)")

    async def main() -> None:
        server = build_web_server("127.0.0.1:0", tmp_path)
        async with server:
            index = await _get(server.addr, "/")
            assert index.startswith(b"HTTP/1.1 200") and index.endswith(b"<p>chat</p>")
            assert b"text/html" in index
            js = await _get(server.addr, "/demo.js")
            assert b"text/javascript" in js and js.endswith(b"console.log(1)")
            client = Client(server.addr)
            client.register_message(ReplyV1)
            await client.connect()
            reply = await client.send_sync(Message(MessageV1(message="ping")), timeout=5)
            assert reply.kind == "goomerang.example.ReplyV1"
            assert reply.payload.message == "ping"
            await client.close()

    asyncio.run(main())
