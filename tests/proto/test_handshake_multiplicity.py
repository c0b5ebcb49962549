"""Upgrade headers that must appear once (RFC 6455 sections 11.3.1, 11.3.5 and 4.2.1)."""

from __future__ import annotations

import pytest
from engine_helpers import REGISTRY, UPGRADE_REQUEST, WS_KEY

from goomerang_proto import HandshakeError
from goomerang_proto import events as ev
from goomerang_proto.server_connection import ServerConnection
from goomerang_proto.status import Status

OTHER_KEY = b"AQIDBAUGBwgJCgsMDQ4PEA=="


def _answer(request: bytes) -> tuple[bytes, list[ev.Event]]:
    conn = ServerConnection(registry=REGISTRY)
    conn.receive_data(request)
    return conn.data_to_send(), conn.events()


def _with(extra: bytes) -> bytes:
    return UPGRADE_REQUEST[:-2] + extra + b"\r\n"


@pytest.mark.parametrize(
    "extra",
    [
        b"Sec-WebSocket-Key: " + OTHER_KEY + b"\r\n",
        b"Sec-WebSocket-Key: " + WS_KEY.encode() + b"\r\n",
        b"Sec-WebSocket-Version: 8\r\n",
        b"sec-websocket-version: 13\r\n",
    ],
    ids=["two-keys", "same-key-twice", "versions-13-and-8", "version-13-twice"],
)
def test_a_repeated_key_or_version_gets_400(extra: bytes) -> None:
    out, events = _answer(_with(extra))
    assert out.startswith(b"HTTP/1.1 400 "), out
    assert b"must appear only once" in out
    (closed,) = events
    assert isinstance(closed, ev.ConnectionClosed)
    assert isinstance(closed.error, HandshakeError) and closed.error.status == 400


@pytest.mark.parametrize("value", [b"13, 8", b"8, 13", b"13,13"])
def test_a_version_list_in_one_field_line_counts_as_repeated(value: bytes) -> None:
    """RFC 9110 section 5.3: a comma list is the field repeated; RFC 6455 11.3.5: at most once."""
    out, _ = _answer(UPGRADE_REQUEST.replace(b"Version: 13", b"Version: " + value))
    assert out.startswith(b"HTTP/1.1 400 "), out
    assert b"must appear only once" in out


def test_one_unsupported_version_stays_426_with_the_supported_one() -> None:
    out, _ = _answer(UPGRADE_REQUEST.replace(b"Version: 13", b"Version: 8"))
    assert out.startswith(b"HTTP/1.1 426 ")
    assert b"Sec-WebSocket-Version: 13" in out


def test_token_list_headers_may_repeat() -> None:
    """Upgrade and Connection are token lists: repeating them is fine."""
    conn = ServerConnection(registry=REGISTRY)
    conn.receive_data(_with(b"Connection: keep-alive\r\nUpgrade: websocket\r\n"))
    assert conn.status is Status.RUNNING
