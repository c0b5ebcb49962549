"""The client side of one connection: the upgrade request, then frames and commands."""

from __future__ import annotations

import base64
import os
import uuid as _uuid
from collections.abc import Iterable
from typing import Any, cast

import h11

from .codec import (
    pack_broadcast_cmd,
    pack_publish_cmd,
    pack_subscribe_cmd,
    pack_unsubscribe_cmd,
)
from .connection import DEFAULT_MAX_MESSAGE_SIZE, BaseConnection, Clock
from .errors import HandshakeError
from .events import Connected, HandshakeRejected
from .extensions import QUEUE_GROUPS, SUPPORTED, ExtensionNotNegotiated
from .extensions import offer as offer_extensions
from .extensions import parse as parse_extensions
from .handshake import accept_token, decode_headers, header_tokens, header_value
from .message import Message
from .registry import Registry
from .status import NEW, RUNNING

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

    __slots__ = (
        "_h11",
        "_key",
        "_offered",
        "_reject_body",
        "_response",
        "extensions",
        "host",
    )

    is_client = True
    #: Goomerang extensions the server accepted on the upgrade (docs/PROTOCOL-extensions.md).
    extensions: frozenset[str]

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
        offer: Iterable[str] = SUPPORTED,
        **options: Any,
    ) -> None:
        self._setup(
            registry=registry, max_message_size=max_message_size, raw=raw, clock=clock, **options
        )
        self.extensions = frozenset()
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
        offered = tuple(offer)
        self._offered = frozenset(offered)
        if offered:
            request_headers.append(offer_extensions(offered))
        request = self._h11.send(h11.Request(method="GET", target=path, headers=request_headers))
        self._out.append(request or b"")
        self._out_size += len(request or b"")
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

    def _handshake_timed_out(self) -> None:
        self._h11 = None

    def _process_response(self) -> None:
        conn = self._h11
        while conn is not None and self.status is NEW:
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
                    # h11 gives a bytearray under its bytes annotation (compiled code checks it)
                    self._reject_body.append(bytes(cast(Any, event).data))
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
        self._running()
        self.request_headers = decode_headers(headers)
        self.extensions = parse_extensions(self.request_headers) & self._offered
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
        self._close_transport = True
        self._events.append(
            HandshakeRejected(status, reason, decode_headers(list(response.headers)), body)
        )
        self._closed(
            1006,
            f"upgrade rejected with HTTP {status}",
            by_peer=True,
            error=HandshakeError(f"server rejected the upgrade: HTTP {status} {reason}", status),
        )

    def _fail_handshake(self, error: HandshakeError) -> None:
        self._h11 = None
        self._close_transport = True
        self._closed(1006, str(error), by_peer=True, error=error)

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
        """Ask the server to send ``message`` to the subscribers of ``topic``.

        Raises ``ValueError`` for an empty topic (reserved: never sent).
        """
        if not topic:
            raise ValueError("topic must be a non-empty string (the empty topic is reserved)")
        self._check_can_send()
        self.send_bytes(pack_publish_cmd(topic, message, creation_ns=self.clock()))
        return int(message.payload.ByteSize())

    def subscribe(self, topic: str, group: str | None = None) -> None:
        """Subscribe this connection to ``topic`` (no acknowledgement on the wire).

        With ``group``, join that queue group of ``topic`` instead (each
        publish reaches one member of the group). Raises ``ValueError`` for
        an empty topic or group, and ``ExtensionNotNegotiated`` for a group
        when the server did not accept ``queue-groups`` on the upgrade.
        """
        self._check_topic(topic, group)
        self.send_bytes(pack_subscribe_cmd(topic, creation_ns=self.clock(), group=group or ""))

    def unsubscribe(self, topic: str, group: str | None = None) -> None:
        """Unsubscribe this connection from ``topic`` (or leave its queue ``group``).

        Raises as :meth:`subscribe` does.
        """
        self._check_topic(topic, group)
        self.send_bytes(pack_unsubscribe_cmd(topic, creation_ns=self.clock(), group=group or ""))

    def _check_topic(self, topic: str, group: str | None) -> None:
        if not topic:
            raise ValueError("topic must be a non-empty string (the empty topic is reserved)")
        if group is None:
            return
        if not group:
            raise ValueError("group must be a non-empty string (or None for a plain subscription)")
        if self.status is RUNNING and QUEUE_GROUPS not in self.extensions:
            raise ExtensionNotNegotiated(
                "the server did not accept the queue-groups extension on the upgrade "
                "(a Go goomerang v0.3.0 server would treat a group member as a plain subscriber)"
            )
