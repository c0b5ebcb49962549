"""What a server and a client connection share once the handshake is done.

Theory of operation. A connection is NEW while the HTTP upgrade runs,
RUNNING once it completed, CLOSING after we sent a Close frame, CLOSED once
the close handshake finished, the connection failed, or the transport ended.
Every status change goes through the table in :mod:`goomerang_proto.status`.

* ``receive_data`` never raises on remote input: framing faults fail the
  connection (a Close frame with 1002/1007/1009, then the caller closes the
  transport); goomerang-level faults (unknown kind, malformed envelope, text
  message, late reply) become :class:`ErrorOccurred` and the connection lives on.
* Pings are answered by the engine; after our Close nothing else is sent.
* A fault found in the same read after complete messages is applied once the
  caller has handled them: ``receive_data`` returns those messages' events,
  replies the caller queues still go out, and the Close follows at the next
  ``data_to_send()`` (or ``receive_data``/``receive_eof``), which then also
  adds the ConnectionClosed event. Messages are answered in order, as
  Autobahn|Testsuite's strict verdict (cases 3.x, 4.x, 5.15) expects.
* Misuse by the caller (sending when not RUNNING) raises at once.
* The engine never calls out: every decoded message is an event
  (``__slots__`` objects, cheap to make) returned by ``events()`` after
  ``receive_data`` returned, so no handler runs while a read is half done.

Output. What we send is framed and queued by :mod:`goomerang_proto.output`.

Time and flow control. The engine never reads a clock: time enters as ``now``
(see :mod:`goomerang_proto.deadlines` for the deadlines and how ``now`` is
given); it counts unsent output against ``high_water``/``low_water`` and the
hard cap ``max_buffered`` (see :mod:`goomerang_proto.flow`).

Loop contract (what a driver does; goomerang_io.asyncio follows it):

1. construct with ``now``; write ``data_to_send()`` when the transport is up;
2. on every read: ``receive_data(data, now=now)``, then handle ``events()``
   (handlers may send), then write ``data_to_send()`` and report the
   transport's unsent byte count with ``set_transport_buffer_size``;
3. pause reading while ``should_read()`` is False; wake waiting senders when
   ``is_writable()``; after a buffer report, write ``data_to_send()`` again
   (a held Pong may be released);
4. ``should_abort_transport()``: abort the transport (drop unsent bytes); else
   ``should_close_transport()``: close it after writing;
5. keep one timer armed at ``get_timer()`` (None: no timer); when it fires call
   ``handle_timer(now)`` and go to step 2's output half;
6. on EOF ``receive_eof(now=now)``; when the transport is really gone,
   ``transport_closed()``.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf.message import DecodeError

from . import status as _status
from .codec import (
    BROADCAST_CMD,
    COMMAND_KINDS,
    PUBLISH_CMD,
    SUBSCRIBE_CMD,
    UNSUBSCRIBE_CMD,
    decode_command_message,
    decode_payload,
    more_headers_than,
    unpack,
)
from .envelope import FAST, NOT_READ, read_fields
from .errors import (
    GoomerangError,
    MalformedFrame,
    UnexpectedText,
    UnknownKind,
)
from .events import (
    BroadcastRequested,
    ConnectionClosed,
    ErrorOccurred,
    Event,
    MessageReceived,
    PingReceived,
    PongReceived,
    PublishRequested,
    RawMessage,
    SubscribeRequested,
    SyncReplyReceived,
    SyncRequestReceived,
    UnsubscribeRequested,
)
from .flow import DEFAULT_HIGH_WATER
from .frames import (
    CLOSE_NO_STATUS,
    CLOSE_POLICY,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameReader,
    close_payload,
    parse_close_payload,
)
from .instances import new_instance
from .message import MAX_HEADERS, Message
from .output import Clock, Output
from .pb import goomerang_frame_pb2 as pb
from .registry import Registry
from .status import Status, move_connection, start_connection

# Final: the compiled build keeps these in C statics rather than the module's dict
_frame_from_string: Final = pb.Frame.FromString
# the per-message Message and event are built without __init__ calls (see instances)
_new_event: Final = new_instance
_new_message: Final = new_instance
_DECODE_ERRORS: Final = (DecodeError, ValueError, RuntimeError)
_Message: Final = Message
_MessageReceived: Final = MessageReceived
_SyncRequestReceived: Final = SyncRequestReceived
_SyncReplyReceived: Final = SyncReplyReceived
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20


def _no_clock() -> int:
    return 0


# the status constants, Final here: compiled code holds them in C statics
NEW: Final = _status.NEW
CLOSED: Final = _status.CLOSED

# A Frame needs 2 bytes per header entry at least, so one of 2 * MAX_HEADERS bytes or
# fewer cannot have too many: the scan before decoding (messages and client commands
# alike) is the whole check.
_HEADERS_SCAN_FROM: Final = 2 * MAX_HEADERS


def _too_many_headers() -> MalformedFrame:
    return MalformedFrame(f"message with more than {MAX_HEADERS} headers dropped undecoded")


class BaseConnection(Output):
    """Shared WebSocket and goomerang logic; use ServerConnection or ClientConnection.

    Keyword options (seconds are floats on the caller's clock, see
    :mod:`goomerang_proto.deadlines`; None disables): ``handshake_timeout``,
    ``ping_interval``, ``ping_timeout``, ``close_timeout``; ``high_water``
    (bytes, default 64 KiB), ``low_water`` (bytes, default ``high_water // 4``),
    ``max_buffered`` (bytes or None), ``overflow_code`` (1008), see
    :mod:`goomerang_proto.flow`; ``now`` (the current time, default 0.0).
    """

    __slots__ = (
        "_classes",
        "_events",
        "_pending_failure",
        "_reader",
        "_registry",
        "clock",
        "close_code",
        "close_reason",
        "path",
        "raw",
        "request_headers",
        "status",
    )

    status: Status
    """NEW, RUNNING, CLOSING or CLOSED; moved only by :func:`status.move_connection`."""

    def __init__(self, **options: Any) -> None:
        self._setup(**options)

    # Subclasses call _setup rather than super().__init__(**options): mypyc (the compiled
    # build, setup.py) passes **options wrongly to a compiled __init__ with keyword-only
    # parameters.

    def _setup(
        self,
        *,
        registry: Registry | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        raw: bool = False,
        clock: Clock | None = None,
        handshake_timeout: float | None = None,
        ping_interval: float | None = None,
        ping_timeout: float | None = None,
        close_timeout: float | None = None,
        high_water: int = DEFAULT_HIGH_WATER,
        low_water: int | None = None,
        max_buffered: int | None = None,
        overflow_code: int = CLOSE_POLICY,
        now: float = 0.0,
    ) -> None:
        start_connection(self)
        self._registry = registry if registry is not None else Registry()
        # its kind -> class dict itself, read per message (registrations made later show)
        self._classes = self._registry.table
        self.raw = raw
        self.clock: Clock = clock if clock is not None else _no_clock
        self._reader = FrameReader(
            expect_masked=not self.is_client, max_message_size=max_message_size
        )
        self._setup_output()
        self._events: list[Event] = []
        self._close_transport = False
        self._abort_transport = False
        self._pending_failure: FrameError | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.path = ""
        self.request_headers: tuple[tuple[str, str], ...] = ()
        self._setup_deadlines(handshake_timeout, ping_interval, ping_timeout, close_timeout, now)
        self._setup_flow(high_water, low_water, max_buffered, overflow_code)

    # ----------------------------------------------------------- properties
    @property
    def registry(self) -> Registry:
        """The registry given at construction (or an empty one): the kinds this side decodes."""
        return self._registry

    @property
    def max_message_size(self) -> int:
        """Largest message accepted from the peer, in bytes."""
        return self._reader.max_message_size

    def events(self) -> list[Event]:
        """Return and clear the events produced since the last call."""
        ev = self._events
        if ev:
            self._events = []
        return ev

    def has_events(self) -> bool:
        """True when ``events()`` would return something (e.g. after ``data_to_send``)."""
        return bool(self._events)

    def data_to_send(self) -> bytes:
        """Return and clear the bytes the caller must write to the transport.

        Only returns bytes: a framing fault found earlier in a read is applied
        by the next ``receive_data``/``receive_eof``/``handle_timer`` or by
        :meth:`apply_pending` (the caller calls it after handling a read's events).
        """
        # What is queued here is the caller's from now on; its next buffer
        # report says what is left of it. Decide on what its transport holds.
        if self._above and self._transport_buffered <= self.low_water:
            self._above = False
        out = self._out
        if self._held_pong is not None and not self._above:
            out.append(self._held_pong)
            self._held_pong = None
        if not out:
            return b""
        self._out = []
        self._out_size = 0
        return out[0] if len(out) == 1 else b"".join(out)

    def apply_pending(self) -> bool:
        """Apply a framing fault that followed complete messages in the last read.

        ``receive_data`` delivers the messages before the fault first so that
        their replies go out before the Close; call this after handling the
        read's events (it may add a ConnectionClosed event and a Close frame).
        Returns True when ``events()`` now has something (False otherwise).
        """
        if self._pending_failure is not None:
            self._apply_pending_failure()
        return bool(self._events)

    def should_close_transport(self) -> bool:
        """True once the caller should close TCP (after writing ``data_to_send()``)."""
        return self._close_transport

    def should_abort_transport(self) -> bool:
        """True once the caller must abort TCP now, dropping unsent bytes.

        Set by a deadline (handshake, pong, close) or by the output hard cap.
        """
        return self._abort_transport

    def transport_closed(self) -> None:
        """The transport is gone (closed or aborted): no deadline applies any more."""
        if self.status is not CLOSED:
            self._closed(1006, "connection ended without a close frame")
        self._close_transport = True
        self._stop_deadlines()
        self._out = []
        self._out_size = self._transport_buffered = 0
        self._held_pong = None

    def _closed(
        self,
        code: int,
        reason: str,
        *,
        by_peer: bool = True,
        error: GoomerangError | None = None,
    ) -> None:
        """Move to CLOSED and report it; start the close deadline; stop keep-alive."""
        move_connection(self, CLOSED)
        self.close_code = code
        self.close_reason = reason
        self._events.append(ConnectionClosed(code, reason, by_peer=by_peer, error=error))
        self._closing()

    # ---------------------------------------------------------------- input
    def receive_data(self, data: bytes | bytearray | memoryview, now: float | None = None) -> None:
        """Feed bytes read from the transport. Never raises on remote input."""
        if now is not None:
            self._now = now
        if self._pending_failure is not None:
            self._apply_pending_failure()
        if self.status is NEW:
            self._receive_handshake(bytes(data))
        elif self.status is not CLOSED:
            self._receive_frames(data)

    def receive_eof(self, now: float | None = None) -> None:
        """The transport was closed by the peer (or the read side ended)."""
        if now is not None:
            self._now = now
        if self._pending_failure is not None:
            self._apply_pending_failure()
        if self.status is NEW:
            self._handshake_eof()
        if self.status is not CLOSED:
            self._closed(1006, "connection ended without a close frame")
        self._closing()
        self._close_transport = True

    def abort(self) -> None:
        """Give up on the connection now: CLOSED (1006) and abort the transport."""
        self._give_up("connection aborted locally", None)

    def _receive_handshake(self, data: bytes) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _handshake_eof(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _receive_frames(self, data: bytes | bytearray | memoryview) -> None:
        frames: list[tuple[int, bytes]] = []
        failure: FrameError | None = None
        try:
            self._reader.feed(data, frames)
        except FrameError as exc:
            failure = exc
        if frames:
            if self.raw:
                self._on_frames_raw(frames)
            else:
                self._on_frames(frames)
        if failure is not None and self.status is not CLOSED:
            if frames:
                # Let the caller answer the messages that came before the fault.
                self._pending_failure = failure
            else:
                self.fail(failure.code, failure.reason)

    def _apply_pending_failure(self) -> None:
        failure = self._pending_failure
        assert failure is not None
        self._pending_failure = None
        self.fail(failure.code, failure.reason)

    def _on_frames(self, frames: list[tuple[int, bytes]]) -> None:
        # The hot path: every received message goes through this loop, so the
        # envelope decode and the Message construction are inlined here.
        classes = self._classes
        from_string = _frame_from_string
        fast = FAST
        is_client = self.is_client
        for opcode, data in frames:
            if opcode != OP_BINARY:
                if opcode == OP_TEXT:
                    self._events.append(
                        ErrorOccurred(
                            UnexpectedText(
                                f"text message of {len(data)} bytes ignored: "
                                "goomerang messages are binary"
                            )
                        )
                    )
                elif self._on_control(opcode, data):
                    return
                continue
            if len(data) > _HEADERS_SCAN_FROM and more_headers_than(data, MAX_HEADERS):
                self._events.append(ErrorOccurred(_too_many_headers()))
                continue
            # the compiled build reads a canonical envelope itself (goomerang_proto.envelope);
            # upb decodes everything else, and everything in the pure build
            read, uuid, kind, is_sync, creation_ns, headers, body = (
                read_fields(data) if fast else NOT_READ
            )
            if not read:
                try:
                    frame = from_string(data)
                except _DECODE_ERRORS:
                    self._bad_binary(data)
                    continue
                kind = frame.kind
                uuid = frame.uuid
                is_sync = frame.is_sync
                body = frame.payload
                upb_headers = frame.headers
                headers = {k: upb_headers[k] for k in upb_headers} if upb_headers else {}
                creation = frame.creation  # an absent Timestamp reads as 0 s, 0 ns
                creation_ns = creation.seconds * 1_000_000_000 + creation.nanos
            if not is_client and kind in COMMAND_KINDS:
                self._on_command(kind, body, headers)
                continue
            cls = classes.get(kind)
            if cls is None:
                self._events.append(ErrorOccurred(UnknownKind(kind, uuid)))
                continue
            try:
                payload = cls.FromString(body)
            except _DECODE_ERRORS:
                self._bad_binary(data)
                continue
            # received_message(...), inlined: a Message without its __init__ call
            message = _new_message(_Message)
            message.payload = payload
            message.headers = headers
            message.kind = kind
            message.uuid = uuid
            message.is_sync = is_sync
            message.creation_ns = creation_ns
            message.payload_size = len(body)
            # MessageReceived(message) etc., without the __init__ call (same slots set)
            event: MessageReceived | SyncRequestReceived | SyncReplyReceived
            if not is_sync:
                event = _new_event(_MessageReceived)
            elif is_client:
                event = _new_event(_SyncReplyReceived)
            else:
                event = _new_event(_SyncRequestReceived)
            event.message = message
            self._events.append(event)

    def _bad_binary(self, data: bytes) -> None:
        """Report a binary message that does not decode (the codec's error, re-raised here)."""
        try:
            unpack(data, self.registry)
        except GoomerangError as exc:
            self._events.append(ErrorOccurred(exc))

    def _on_command(self, kind: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            self._events.append(self._command(kind, body, headers))
        except GoomerangError as exc:
            self._events.append(ErrorOccurred(exc))

    def _on_frames_raw(self, frames: list[tuple[int, bytes]]) -> None:
        for opcode, payload in frames:
            if opcode <= OP_BINARY:
                self._events.append(RawMessage(opcode, payload))
            elif self._on_control(opcode, payload):
                return

    def _on_control(self, opcode: int, payload: bytes) -> bool:
        """Handle a control frame; True when the connection is now CLOSED."""
        if opcode == OP_PING:
            if not self._close_sent:
                if self._above:
                    # RFC 6455 5.5.3: answering only the most recent Ping is allowed
                    self._held_pong = self._frame(OP_PONG, payload)
                else:
                    self._write_frame(OP_PONG, payload)
            self._events.append(PingReceived(payload))
            return False
        if opcode == OP_PONG:
            self._pong_received()
            self._events.append(PongReceived(payload))
            return False
        assert opcode == OP_CLOSE
        code, reason = parse_close_payload(payload)
        by_peer = not self._close_sent
        if not self._close_sent:
            self._close_sent = True
            self._write_frame(OP_CLOSE, close_payload(code, "") if code != CLOSE_NO_STATUS else b"")
        if not self.is_client:
            self._close_transport = True
        self._closed(code, reason, by_peer=by_peer)
        return True

    def _command(self, kind: str, body: bytes, headers: dict[str, str]) -> Event:
        if kind == BROADCAST_CMD:
            bcast: Any = decode_payload(pb.BroadcastCmd, body, kind)
            return BroadcastRequested(
                decode_command_message(bcast.kind, bcast.message, headers, self.registry)
            )
        if kind == PUBLISH_CMD:
            pub: Any = decode_payload(pb.PublishCmd, body, kind)
            return PublishRequested(
                pub.topic,
                decode_command_message(pub.kind, pub.message, headers, self.registry),
            )
        if kind == SUBSCRIBE_CMD:
            sub: Any = decode_payload(pb.SubscribeCmd, body, kind)
            return SubscribeRequested(sub.topic, sub.group)
        if kind == UNSUBSCRIBE_CMD:
            unsub: Any = decode_payload(pb.UnsubscribeCmd, body, kind)
            return UnsubscribeRequested(unsub.topic, unsub.group)
        raise AssertionError(kind)  # pragma: no cover - COMMAND_KINDS has only these four


__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "BaseConnection", "Clock"]
