"""Custom HTTP routes on the server's port, next to connected WebSocket clients."""

from __future__ import annotations

import asyncio
import http.client
from typing import Any

import pytest
from util import WAIT, Inbox, connected, echo, msg, new_client, new_server, run, running

from goomerang_io import Request, Response, Server
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1


def http_exchanges(
    server: Server, requests: list[tuple[str, str, bytes | None]]
) -> list[tuple[int, dict[str, str], bytes]]:
    """Blocking: run ``requests`` (method, path, body) on one keep-alive HTTP connection."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=WAIT)
    try:
        out = []
        for method, path, body in requests:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            out.append((resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()))
        return out
    finally:
        conn.close()


async def http_get(server: Server, *requests: tuple[str, str, bytes | None]) -> list[Any]:
    """``http_exchanges`` in a thread, bounded."""
    return await asyncio.wait_for(asyncio.to_thread(http_exchanges, server, list(requests)), WAIT)


def test_route_answers_over_plain_http_while_websocket_clients_are_connected() -> None:
    async def main() -> None:
        server = new_server()
        server.handle(MessageV1, echo)
        seen = Inbox()

        def hello(request: Request) -> Response:
            seen.put(request)
            return Response(200, b"hi there\n", (("X-Route", "hello"),))

        server.route("/hello", hello)
        async with running(server):
            clients = [new_client(server) for _ in range(2)]
            for client in clients:
                client.register_message(ReplyV1)
                await asyncio.wait_for(client.connect(), WAIT)
            try:
                ((status, headers, body),) = await http_get(server, ("GET", "/hello?a=1&a=2", None))
                assert status == 200
                assert body == b"hi there\n"
                assert headers["x-route"] == "hello"
                assert headers["content-type"].startswith("text/plain")
                (request,) = seen.items
                assert request.method == "GET" and request.path == "/hello"
                assert request.query_params == {"a": ["1", "2"]}
                assert request.header("Host") is not None
                assert request.peer is not None and request.peer[0] == "127.0.0.1"
                # the WebSocket clients are unaffected
                assert server.connections() == 2
                for i, client in enumerate(clients):
                    got = await client.send_sync(msg(f"ws {i}"), timeout=WAIT)
                    assert got.payload == ReplyV1(message=f"ws {i}")
            finally:
                for client in clients:
                    await asyncio.wait_for(client.close(), WAIT)

    run(main())


def test_unknown_path_is_404_and_keep_alive_serves_several_requests() -> None:
    async def main() -> None:
        server = new_server()

        async def async_route(request: Request) -> tuple[int, bytes]:
            return 201, b"posted " + request.body

        server.route("/plain", lambda _r: "text reply")
        server.route("/post", async_route)
        async with running(server):
            results = await http_get(
                server,
                ("GET", "/nope", None),
                ("GET", "/plain", None),
                ("POST", "/post", b"some body"),
                ("GET", "/", None),
            )
        assert [r[0] for r in results] == [404, 200, 201, 404]
        assert results[1][2] == b"text reply"
        assert results[2][2] == b"posted some body"

    run(main())


def test_route_that_raises_answers_500_and_is_reported() -> None:
    async def main() -> None:
        errors = Inbox()
        server = new_server(on_error=errors)

        def broken(_request: Request) -> bytes:
            raise RuntimeError("route failed")

        server.route("/broken", broken)
        server.route("/ok", lambda _r: b"ok")
        async with running(server):
            results = await http_get(server, ("GET", "/broken", None), ("GET", "/ok", None))
            err = await errors.wait_for(lambda e: isinstance(e, RuntimeError))
        assert [r[0] for r in results] == [500, 200]
        assert str(err) == "route failed"

    run(main())


def test_plain_get_on_the_websocket_path_is_refused() -> None:
    async def main() -> None:
        server = new_server()
        async with running(server):
            ((status, _headers, _body),) = await http_get(server, ("GET", "/ws", None))
            assert status == 400
            client = new_client(server)
            async with connected(client):  # the endpoint itself still works
                assert server.connections() == 1

    run(main())


@pytest.mark.parametrize("path", ["/ws", "/wss"])
def test_websocket_paths_are_reserved(path: str) -> None:
    server = Server("127.0.0.1:0")
    with pytest.raises(ValueError, match="reserved"):
        server.route(path, lambda _r: b"")
    assert path not in server.routes


def test_route_path_must_start_with_a_slash() -> None:
    server = Server("127.0.0.1:0")
    with pytest.raises(ValueError):
        server.route("metrics", lambda _r: b"")


def test_keep_alive_connection_gets_the_handshake_deadline_for_its_next_request() -> None:
    async def main() -> None:
        server = new_server(handshake_timeout=0.3)
        server.route("/plain", lambda _r: b"ok")
        async with running(server):
            reader, writer = await asyncio.open_connection(server.host, server.port)
            try:
                writer.write(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), WAIT)
                assert head.startswith(b"HTTP/1.1 200")
                writer.write(b"GET /plain HTTP/1.1\r\nHost: x\r\n")  # never finished
                assert await asyncio.wait_for(reader.read(), WAIT) == b""
            finally:
                writer.close()

    run(main())


def test_pipelined_requests_are_all_answered() -> None:
    async def main() -> None:
        server = new_server(handshake_timeout=0.3)
        server.route("/a", lambda _r: b"A")
        server.route("/b", lambda _r: b"B")
        async with running(server):
            reader, writer = await asyncio.open_connection(server.host, server.port)
            try:
                writer.write(
                    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                data = await asyncio.wait_for(reader.read(), WAIT)
            finally:
                writer.close()
        assert data.count(b"HTTP/1.1 200") == 2
        assert data.endswith(b"B") and b"\r\n\r\nA" in data

    run(main())
