"""HTTP/1.1 by the RFCs on every route (issue 16, input 14), over raw sockets.

h11 parses; the policy is ours: conflicting framing headers are answered and
the connection closed (RFC 9112 section 6.1), ``Expect: 100-continue`` is
answered at once (RFC 9110 section 10.1.1), absolute-form targets are
accepted (RFC 9112 section 3.2.2).
"""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st
from rawws import http_exchange, split_addr, upgrade_request
from util import WAIT, Inbox, new_server, run, running

from goomerang_io import Request
from goomerang_proto.handshake import split_target


async def exchange(addr: str, data: bytes) -> tuple[bytes, bool]:
    """Send ``data``; read until the server closes (True) or goes quiet after answering."""
    host, port = split_addr(addr)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        got = b""
        async with asyncio.timeout(WAIT):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return got, True
                got += chunk
    except TimeoutError:
        return got, False
    finally:
        writer.transport.abort()


def routes_server() -> tuple[object, Inbox]:
    ran = Inbox()
    server = new_server()

    def echo(request: Request) -> bytes:
        ran.put(request.path)
        return request.body

    server.route("/echo", echo)
    server.route("/admin", lambda r: ran.put(r.path) or b"secret")
    return server, ran


def test_content_length_with_transfer_encoding_is_answered_and_closed() -> None:
    """The smuggling case of input 14: one 400, the connection closed, /admin never ran."""

    async def main() -> None:
        server, ran = routes_server()
        async with running(server):  # type: ignore[arg-type]
            smuggle = (
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            got, closed = await exchange(server.addr, smuggle)  # type: ignore[attr-defined]
            assert got.startswith(b"HTTP/1.1 400 "), got
            assert got.count(b"HTTP/1.1 ") == 1
            assert closed
            assert ran.items == []
            # the WebSocket endpoint follows the same rule
            bad = upgrade_request(
                server.addr,  # type: ignore[attr-defined]
                headers=[("Content-Length", "0"), ("Transfer-Encoding", "chunked")],
            )
            got, closed = await exchange(server.addr, bad)  # type: ignore[attr-defined]
            assert got.startswith(b"HTTP/1.1 400 ") and closed

    run(main())


def test_expect_100_continue_is_answered_at_once() -> None:
    async def main() -> None:
        server, ran = routes_server()
        async with running(server):  # type: ignore[arg-type]
            host, port = split_addr(server.addr)  # type: ignore[attr-defined]
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                    b"Expect: 100-continue\r\n\r\n"
                )
                async with asyncio.timeout(WAIT):  # the body is held back until the 100
                    interim = await reader.readuntil(b"\r\n\r\n")
                assert interim.startswith(b"HTTP/1.1 100 "), interim
                writer.write(b"hello")
                async with asyncio.timeout(WAIT):
                    head = await reader.readuntil(b"\r\n\r\n")
                    body = await reader.readexactly(5)
                assert head.startswith(b"HTTP/1.1 200 ") and body == b"hello"
            finally:
                writer.transport.abort()
            too_big = (
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            got, closed = await exchange(server.addr, too_big)  # type: ignore[attr-defined]
            assert got.startswith(b"HTTP/1.1 413 ") and closed
            assert ran.items == ["/echo"]

    run(main())


def test_absolute_form_targets_are_accepted() -> None:
    async def main() -> None:
        server, ran = routes_server()
        async with running(server):  # type: ignore[arg-type]
            addr = server.addr  # type: ignore[attr-defined]
            got, _ = await exchange(
                addr,
                f"GET http://{addr}/admin?x=1 HTTP/1.1\r\nHost: {addr}\r\n"
                "Connection: close\r\n\r\n".encode(),
            )
            assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"secret"), got
            status, head = await http_exchange(addr, upgrade_request(addr, f"http://{addr}/ws"))
            assert status == 101, head
            assert ran.items == ["/admin"]

    run(main())


@given(
    st.from_regex(r"(/[a-z0-9._~-]*)*", fullmatch=True),
    st.from_regex(r"(\?[a-z0-9=&]*)?", fullmatch=True),
    st.sampled_from(["http://", "HTTPS://"]),
    st.from_regex(r"[a-z0-9.-]+(:[0-9]{1,5})?", fullmatch=True),
)
def test_split_target_absolute_form_equals_origin_form(
    path: str, query: str, scheme: str, authority: str
) -> None:
    origin = (path or "/") + query
    assert split_target(scheme + authority + path + query) == split_target(origin)
