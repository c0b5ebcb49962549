"""The client side of one connection: the upgrade request, then frames and commands."""

from __future__ import annotations

import base64
import os
import uuid as _uuid
from collections.abc import Iterable
from typing import Any

import h11

from .codec import (
    pack_broadcast_cmd,
    pack_publish_cmd,
    pack_subscribe_cmd,
    pack_unsubscribe_cmd,
)
from .connection import DEFAULT_MAX_MESSAGE_SIZE, BaseConnection, Clock
from .errors import HandshakeError
from .events import Connected, ConnectionClosed, HandshakeRejected
from .handshake import accept_token, decode_headers, header_tokens, header_value
from .message import Message
from .registry import Registry
from .status import Status

MAX_REJECT_BODY = 64 * 1024


def new_uuid() -> str:
    """A fresh UUID v4 as 36-character text (the sync request correlation id)."""
    return str(_uuid.uuid4())


class ClientConnection(BaseConnection):
    """Client side of one TCP connection.

    The upgrade request is queued at construction: write ``data_to_send()``
    as soon as the transport is up. ``host`` is the Host header value
    (``127.0.0.1:8080``), ``path`` the endpoint (``/ws`` or ``/wss``).
    """

    is_client = True

    def __init__(
        self,
        host: str,
        path: str = "/ws",
        *,
        headers: Iterable[tuple[str, str]] = (),
        registry: Registry | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        raw: bool = False,
        clock: Clock | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(registry=registry, max_message_size=max_message_size, raw=raw, clock=clock)
        self.host = host
        self.path = path
        self._key = key if key is not None else base64.b64encode(os.urandom(16)).decode("ascii")
        self._h11: h11.Connection | None = h11.Connection(h11.CLIENT)
        self._response: h11.Response | None = None
        self._reject_body: list[bytes] = []
        request_headers = [
            ("Host", host),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self._key),
            ("Sec-WebSocket-Version", "13"),
            *headers,
        ]
        self._out.append(
            self._h11.send(h11.Request(method="GET", target=path, headers=request_headers)) or b""
        )
        self._h11.send(h11.EndOfMessage())

    # ------------------------------------------------------------ handshake
    def _receive_handshake(self, data: bytes) -> None:
        conn = self._h11
        assert conn is not None
        if not data:
            return  # h11 reads b"" as EOF; ours is receive_eof()
        conn.receive_data(data)
        self._process_response()

    def _handshake_eof(self) -> None:
        conn = self._h11
        if conn is None:
            return
        if self._response is not None:
            self._rejected()
            return
        self._fail_handshake(
            HandshakeError(
                "connection closed before the upgrade response (if the server uses TLS, "
                "connect with tls=ssl.create_default_context())"
            )
        )

    def _process_response(self) -> None:
        conn = self._h11
        while conn is not None and self.status is Status.NEW:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail_handshake(HandshakeError(f"bad HTTP response to the upgrade: {exc}"))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                if self._response is not None:
                    # Any non-101 answer fails the upgrade now, with the body read so
                    # far: waiting for the rest (no length, chunked) could last forever.
                    self._rejected()
                return
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    self._switched(event)
                    return
                continue
            if isinstance(event, h11.Response):
                self._response = event
            elif isinstance(event, h11.Data):
                if sum(map(len, self._reject_body)) < MAX_REJECT_BODY:
                    self._reject_body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self._rejected()
                return

    def _switched(self, response: h11.InformationalResponse) -> None:
        conn = self._h11
        assert conn is not None
        headers = list(response.headers)
        if "websocket" not in header_tokens(headers, b"upgrade"):
            self._fail_handshake(HandshakeError("101 response without Upgrade: websocket"))
            return
        if "upgrade" not in header_tokens(headers, b"connection"):
            self._fail_handshake(HandshakeError("101 response without Connection: Upgrade"))
            return
        if header_value(headers, b"sec-websocket-accept") != accept_token(self._key):
            self._fail_handshake(HandshakeError("wrong Sec-WebSocket-Accept in the 101 response"))
            return
        trailing, _closed = conn.trailing_data
        self._h11 = None
        self.status = Status.RUNNING
        self.request_headers = decode_headers(headers)
        self._events.append(Connected(self.path, self.request_headers))
        if trailing:
            self._receive_frames(bytes(trailing))

    def _rejected(self) -> None:
        response = self._response
        assert response is not None
        status = response.status_code
        reason = response.reason.decode("latin-1")
        body = b"".join(self._reject_body)
        self._h11 = None
        self.status = Status.CLOSED
        self.close_code = 1006
        self._close_transport = True
        self._events.append(
            HandshakeRejected(status, reason, decode_headers(list(response.headers)), body)
        )
        self._events.append(
            ConnectionClosed(
                1006,
                f"upgrade rejected with HTTP {status}",
                by_peer=True,
                error=HandshakeError(
                    f"server rejected the upgrade: HTTP {status} {reason}", status
                ),
            )
        )

    def _fail_handshake(self, error: HandshakeError) -> None:
        self._h11 = None
        self.status = Status.CLOSED
        self.close_code = 1006
        self._close_transport = True
        self._events.append(ConnectionClosed(1006, str(error), by_peer=True, error=error))

    # ------------------------------------------------------------- commands
    def send_sync(self, message: Message[Any], uuid: str | None = None) -> str:
        """Queue ``message`` as a sync request; return its correlation uuid."""
        uid = uuid if uuid is not None else new_uuid()
        self.send(message, uuid=uid, is_sync=True)
        return uid

    def broadcast(self, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to every client; return the payload size."""
        self._check_can_send()
        data = pack_broadcast_cmd(message, creation_ns=self.clock())
        self.send_bytes(data)
        return int(message.payload.ByteSize())

    def publish(self, topic: str, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to the subscribers of ``topic``."""
        self._check_can_send()
        self.send_bytes(pack_publish_cmd(topic, message, creation_ns=self.clock()))
        return int(message.payload.ByteSize())

    def subscribe(self, topic: str) -> None:
        """Subscribe this connection to ``topic`` (no acknowledgement on the wire)."""
        self.send_bytes(pack_subscribe_cmd(topic, creation_ns=self.clock()))

    def unsubscribe(self, topic: str) -> None:
        """Unsubscribe this connection from ``topic``."""
        self.send_bytes(pack_unsubscribe_cmd(topic, creation_ns=self.clock()))
