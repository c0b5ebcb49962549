"""The server side of one connection: HTTP phase (h11), upgrade, then frames."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import h11

from .codec import pack
from .connection import DEFAULT_MAX_MESSAGE_SIZE, BaseConnection, Clock
from .errors import HandshakeError, LocalProtocolError, NotRunning
from .events import Connected, HandshakeRequest, HttpRequest
from .extensions import answer as answer_extensions
from .extensions import parse as parse_extensions
from .frames import OP_BINARY, build_frame
from .handshake import (
    accept_token,
    decode_headers,
    header_tokens,
    header_value,
    split_target,
    valid_key,
)
from .message import Message
from .registry import Registry
from .status import NEW, RUNNING

DEFAULT_MAX_REQUEST_SIZE = 16 * 1024
_SINGLE_HEADERS = (b"sec-websocket-key", b"sec-websocket-version")
DEFAULT_MAX_HTTP_BODY = 1 << 20

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Payload Too Large",
    426: b"Upgrade Required",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


def prepare(message: Message[Any], *, creation_ns: int = 0) -> bytes:
    """Frame a server-to-client message once; write the result to many connections."""
    return build_frame(OP_BINARY, pack(message, creation_ns=creation_ns))


class ServerConnection(BaseConnection):
    """Server side of one TCP connection.

    Serves the WebSocket upgrade on ``ws_path`` (``/ws``, or ``/wss`` with
    ``tls=True``); any other request becomes an :class:`HttpRequest` event to
    answer with :meth:`send_http_response`. With ``auto_accept=False`` a valid
    upgrade becomes a :class:`HandshakeRequest` to :meth:`accept` or :meth:`reject`.
    """

    __slots__ = (
        "_awaiting_accept",
        "_awaiting_response",
        "_body",
        "_body_size",
        "_h11",
        "_request",
        "auto_accept",
        "extensions",
        "max_http_body",
        "max_request_size",
        "ws_path",
    )

    is_client = False

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        tls: bool = False,
        ws_path: str | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        max_http_body: int = DEFAULT_MAX_HTTP_BODY,
        auto_accept: bool = True,
        raw: bool = False,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        self._setup(
            registry=registry, max_message_size=max_message_size, raw=raw, clock=clock, **options
        )
        self.extensions = frozenset()
        self.ws_path = ws_path if ws_path is not None else ("/wss" if tls else "/ws")
        self.auto_accept = auto_accept
        self.max_http_body = max_http_body
        self.max_request_size = max_request_size
        self._h11: h11.Connection | None = h11.Connection(
            h11.SERVER, max_incomplete_event_size=max_request_size
        )
        self._request: h11.Request | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._awaiting_response = False
        self._awaiting_accept = False

    # ------------------------------------------------------------- HTTP phase
    def _receive_handshake(self, data: bytes) -> None:
        assert self._h11 is not None
        if not data:
            return  # h11 reads b"" as EOF; ours is receive_eof()
        if self._awaiting_accept:
            self._h11.receive_data(data)
            return
        self._h11.receive_data(data)
        self._process_http()

    def _handshake_eof(self) -> None:
        self._h11 = None

    def _handshake_timed_out(self) -> None:
        self._h11 = None
        self._awaiting_accept = self._awaiting_response = False

    def _process_http(self) -> None:
        conn = self._h11
        while conn is not None and self.status is NEW and not self._awaiting_response:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                self._reject_plain(status if status >= 400 else 400, f"bad HTTP request: {exc}")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                if event is h11.PAUSED and self._request is not None and not self._awaiting_accept:
                    self._on_request_complete()
                    continue
                return
            if isinstance(event, h11.Request):
                # h11 bounds only an incomplete head; one that arrived whole is checked here.
                size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                if size > self.max_request_size:
                    self._reject_plain(431, "request line and headers too large")
                    return
                if not self._head_policy(conn, event):
                    return
                self._request = event
                self._body = []
                self._body_size = 0
            elif isinstance(event, h11.Data):
                # h11 gives a bytearray under its bytes annotation, and compiled code checks
                # every read of a bytes-typed attribute: read it untyped, once
                data = cast(Any, event).data
                self._body_size += len(data)
                if self._body_size > self.max_http_body:
                    self._reject_plain(413, "request body too large")
                    return
                self._body.append(bytes(data))
            elif isinstance(event, h11.EndOfMessage):
                self._on_request_complete()
            elif isinstance(event, h11.ConnectionClosed):
                self._finish(1006, "connection closed during the HTTP phase")
                return

    def _head_policy(self, conn: h11.Connection, request: h11.Request) -> bool:
        """HTTP/1.1 rules on a request head that h11 leaves to the server; False: rejected.

        * Content-Length with Transfer-Encoding: answer 400 and close (RFC 9112
          section 6.1: a proxy may frame the body otherwise; smuggling guard).
        * ``Expect: 100-continue``: answer at once (RFC 9110 section 10.1.1): 413
          when the declared body is over ``max_http_body``, else 100 Continue.
        """
        names = {k.lower() for k, _ in request.headers}
        if b"content-length" in names and b"transfer-encoding" in names:
            self._reject_plain(
                400, "Content-Length and Transfer-Encoding together (RFC 9112 section 6.1)"
            )
            return False
        if conn.they_are_waiting_for_100_continue:
            length = header_value(list(request.headers), b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_http_body:
                self._reject_plain(413, "request body too large")
                return False
            self._out.append(
                conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
            )
        return True

    def _on_request_complete(self) -> None:
        request = self._request
        assert request is not None
        target = request.target.decode("latin-1")
        path, query = split_target(target)
        headers = list(request.headers)
        upgrade = "websocket" in header_tokens(headers, b"upgrade")
        if path == self.ws_path:
            if request.method != b"GET" or not upgrade:
                self._reject_plain(
                    400, "expected a WebSocket upgrade (GET with Upgrade: websocket)"
                )
                return
            if "upgrade" not in header_tokens(headers, b"connection"):
                self._reject_plain(400, "missing Connection: Upgrade")
                return
            repeated = [
                name.decode("latin-1")
                for name in _SINGLE_HEADERS
                if sum(value.count(b",") + 1 for key, value in headers if key.lower() == name) > 1
            ]
            if repeated:
                # RFC 6455 11.3.1 / 11.3.5: at most once in a request; 4.2.1: else 400. A comma
                # list in one field line counts as the field repeated (RFC 9110 section 5.3).
                self._reject_plain(400, f"{', '.join(repeated)} must appear only once")
                return
            if header_value(headers, b"sec-websocket-version") != "13":
                self._reject_plain(
                    426, "unsupported WebSocket version", extra=[(b"Sec-WebSocket-Version", b"13")]
                )
                return
            key = header_value(headers, b"sec-websocket-key")
            if key is None or not valid_key(key):
                self._reject_plain(400, "missing or invalid Sec-WebSocket-Key")
                return
            self.path = path
            self.request_headers = decode_headers(headers)
            self._awaiting_accept = True
            if self.auto_accept:
                self.accept()
            else:
                self._events.append(HandshakeRequest(path, query, self.request_headers))
            return
        self._awaiting_response = True
        self._events.append(
            HttpRequest(
                request.method.decode("latin-1"),
                target,
                path,
                query,
                decode_headers(headers),
                b"".join(self._body),
            )
        )

    #: Goomerang extensions accepted on the upgrade (see ``extensions``).
    extensions: frozenset[str]

    def accept(self, headers: Iterable[tuple[str, str]] = (), now: float | None = None) -> None:
        """Complete a pending upgrade with 101 Switching Protocols; keep-alive starts at ``now``.

        The extensions the client offered and this engine speaks are echoed
        in ``Goomerang-Extensions`` (docs/PROTOCOL-extensions.md).
        """
        if now is not None:
            self._now = now
        if not self._awaiting_accept or self.status is not NEW:
            raise LocalProtocolError("no WebSocket upgrade is waiting to be accepted")
        conn = self._h11
        assert conn is not None and self._request is not None
        key = header_value(list(self._request.headers), b"sec-websocket-key")
        assert key is not None
        lines = [
            b"HTTP/1.1 101 Switching Protocols",
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Accept: " + accept_token(key).encode("ascii"),
        ]
        echo = answer_extensions(self.request_headers)
        self.extensions = parse_extensions(echo)
        lines.extend(f"{k}: {v}".encode("latin-1") for k, v in (*echo, *headers))
        self._queue_bytes(b"\r\n".join(lines) + b"\r\n\r\n")
        trailing, _closed = conn.trailing_data
        self._h11 = None
        self._awaiting_accept = False
        self._running()
        self._events.append(Connected(self.path, self.request_headers))
        if trailing:
            self._receive_frames(bytes(trailing))

    def reject(
        self, status: int = 403, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Refuse a pending upgrade with an HTTP error and end the connection."""
        if not self._awaiting_accept or self.status is not NEW:
            raise LocalProtocolError("no WebSocket upgrade is waiting to be rejected")
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self._reject_plain(status, body.decode("utf-8", "replace"), extra=extra, body=body)

    def _reject_plain(
        self,
        status: int,
        message: str,
        *,
        extra: list[tuple[bytes, bytes]] | None = None,
        body: bytes | None = None,
    ) -> None:
        data = body if body is not None else (message + "\n").encode("utf-8")
        reason = _REASONS.get(status, b"Error")
        head = [
            b"HTTP/1.1 %d %s" % (status, reason),
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Length: %d" % len(data),
            b"Connection: close",
        ]
        head.extend(k + b": " + v for k, v in (extra or []))
        self._queue_bytes(b"\r\n".join(head) + b"\r\n\r\n" + data)
        self._finish(status, message, error=HandshakeError(message, status))

    def _finish(self, code: int, reason: str, error: HandshakeError | None = None) -> None:
        self._h11 = None
        self._close_transport = True
        self._closed(code, reason, by_peer=False, error=error)

    def should_read(self) -> bool:
        """False while output the peer caused keeps us above high water, and while a
        request waits for its answer (an upgrade for ``accept``/``reject``, a plain HTTP
        request for ``send_http_response``): what the peer pipelines behind it stays in
        the peer's TCP window, not in our buffer, so the HTTP phase holds at most one
        request head and one read."""
        if self._awaiting_response or self._awaiting_accept:
            return False
        return not (self._above and self._peer_debt)

    def _queue_bytes(self, data: bytes) -> None:
        self._out.append(data)
        self._queued(len(data), True)

    def send_http_response(
        self,
        status: int = 404,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        now: float | None = None,
    ) -> None:
        """Answer the pending :class:`HttpRequest`; keep-alive is honoured.

        With keep-alive the next request gets a fresh ``handshake_timeout`` from ``now``.
        """
        if now is not None:
            self._now = now
        conn = self._h11
        if not self._awaiting_response or conn is None:
            raise LocalProtocolError("no HTTP request is waiting for a response")
        hdrs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        names = {k.lower() for k, _ in hdrs}
        if b"content-length" not in names:
            hdrs.append((b"Content-Length", str(len(body)).encode()))
        try:
            self._queue_bytes(
                conn.send(
                    h11.Response(status_code=status, headers=hdrs, reason=_REASONS.get(status, b""))
                )
                or b""
            )
            if body and self._request is not None and self._request.method != b"HEAD":
                self._queue_bytes(conn.send(h11.Data(data=body)) or b"")
            self._queue_bytes(conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"invalid HTTP response: {exc}") from exc
        self._awaiting_response = False
        self._request = None
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
            self._finish(1000, "HTTP exchange finished")
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            self._finish(1000, "HTTP exchange finished")
            return
        if self.handshake_timeout is not None:
            # keep-alive: the next request gets the same deadline (slowloris guard)
            self._handshake_deadline = self._now + self.handshake_timeout
        self._process_http()

    # ------------------------------------------------------------ fan-out
    def send_prepared(self, frame: bytes, *, in_response: bool = False) -> bool:
        """Write a frame made by :func:`prepare` (shared by many connections).

        Returns False, queuing nothing, when the output hard cap
        (``max_buffered``) was already passed: the connection is then failed
        with ``overflow_code`` and ``should_abort_transport()`` is True.
        Raises NotRunning when the connection is not RUNNING.
        """
        cap = self.max_buffered
        if cap is not None and self._out_size + self._transport_buffered > cap:
            self._over_cap()
            return False
        if self.status is not RUNNING:
            raise NotRunning(f"connection is {self.status.name}: cannot send")
        self._out.append(frame)
        # what _queued does, inlined (once per target of every fan-out)
        self._out_size += len(frame)
        if in_response:
            self._peer_debt = True
        if self._out_size + self._transport_buffered > self.high_water:
            self._above = True
        return True
