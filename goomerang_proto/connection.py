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

Time. The engine never reads a clock: time enters as ``now``, float seconds
of the caller's monotonic clock (an event loop's time, the process's
monotonic clock, or a virtual clock in tests; any origin, only differences matter). It is given to
the constructor (the handshake deadline starts there), to ``handle_timer(now)``
and, optionally, to ``receive_data``/``receive_eof``/``close``/``fail``/
``accept``/``reject``/``send_http_response``, the calls that may start a
deadline. A call without ``now`` uses the latest ``now`` the engine was
given, so a caller that passes it to ``receive_data`` and ``handle_timer``
only gets deadlines that start at most one event-loop turn early. The
deadlines (each disabled by ``None``):

* ``handshake_timeout``: from construction until the upgrade completes (101
  sent or received) or, on a server, until a plain HTTP request is answered
  (restarted for the next keep-alive request). Past it: CLOSED (1006,
  :class:`HandshakeError`), transport aborted.
* ``ping_interval``: while RUNNING, a Ping (payload ``ping``) every interval;
  ``ping_timeout`` after a Ping with no Pong since: CLOSED (1006,
  :class:`ConnectionLost`), transport aborted.
* ``close_timeout``: from the moment the close starts (our Close, the peer's
  Close, a failure, EOF) until the caller reports ``transport_closed()``.
  Past it: CLOSED if not yet, and the transport is aborted, whatever the peer
  does (a peer that stops reading cannot hold the socket).

Flow control. The engine counts the bytes it holds for output plus what the
caller reports still sits in its transport's write buffer
(``set_transport_buffer_size``): that sum is ``buffered_amount``. Above
``high_water`` the connection is not writable (``is_writable()`` False) until
the sum drops to ``low_water`` or below (hysteresis). Two kinds of output:

* application-initiated (a client's send, a server push, a broadcast the
  application started): the caller makes the sender wait (``await send``)
  until ``is_writable()``; reading goes on, so two endpoints that push at
  each other never deadlock;
* caused by the peer's input (``in_response=True``: replies from handlers,
  fan-out the peer commanded that comes back to it): while such output is
  among the unsent bytes and the connection is above high water,
  ``should_read()`` is False: the caller pauses reading from that peer, whose
  own TCP window then throttles it, and resumes when ``should_read()`` is
  True again (at low water).
* Pongs are answered one per Ping while the connection is writable (as
  Autobahn|Testsuite 2.10/2.11 expect); above high water a queued, unsent
  Pong is replaced by the newest one (RFC 6455 section 5.5.3 allows answering
  only the most recent Ping), so a ping flood holds at most one Pong (125
  bytes) and never pauses reading (a heartbeat Pong must not be able to stop
  two pushing endpoints from reading each other).
* Hard cap ``max_buffered`` (None: none): a connection that already holds
  more than that and is asked to queue more is failed with
  ``overflow_code`` (1008 by default), ``should_abort_transport()`` becomes
  True and the caller drops the transport and its buffers. At most
  ``max_buffered`` plus one message is ever held.

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

from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from .codec import (
    BROADCAST_CMD,
    COMMAND_KINDS,
    PUBLISH_CMD,
    SUBSCRIBE_CMD,
    UNSUBSCRIBE_CMD,
    decode_command_message,
    decode_payload,
    envelope_head,
    unpack,
)
from .errors import (
    Closing,
    ConnectionLost,
    GoomerangError,
    HandshakeError,
    LocalProtocolError,
    MessageTooLarge,
    NotRunning,
    RemoteProtocolError,
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
from .frames import (
    _HEAD16,
    CLOSE_NO_STATUS,
    CLOSE_NORMAL,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameReader,
    MaskKeys,
    binary_header,
    build_frame,
    close_payload,
    masked_binary,
    parse_close_payload,
)
from .message import Message
from .pb import goomerang_frame_pb2 as pb
from .registry import Registry
from .status import Status, move_connection

Clock = Callable[[], int]
_frame_from_string = pb.Frame.FromString
_new_event = object.__new__  # the per-message events are built without a Python __init__ call
_new_message = Message.__new__
_DECODE_ERRORS = (DecodeError, ValueError, RuntimeError)
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
DEFAULT_HIGH_WATER = 64 * 1024
"""Default ``high_water``: bytes of unsent output above which the connection is not writable."""
CLOSE_POLICY = 1008


def _no_clock() -> int:
    return 0


class BaseConnection:
    """Shared WebSocket and goomerang logic; use ServerConnection or ClientConnection.

    Keyword options (seconds are floats on the caller's clock, see the module
    docstring; None disables): ``handshake_timeout``, ``ping_interval``,
    ``ping_timeout``, ``close_timeout``; ``high_water`` (bytes, default
    64 KiB), ``low_water`` (bytes, default ``high_water // 4``),
    ``max_buffered`` (bytes or None), ``overflow_code`` (1008); ``now`` (the
    current time, default 0.0).
    """

    is_client = False
    status: Status = Status.NEW
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
        self.registry = registry if registry is not None else Registry()
        self.raw = raw
        self.clock: Clock = clock if clock is not None else _no_clock
        self._reader = FrameReader(
            expect_masked=not self.is_client, max_message_size=max_message_size
        )
        self._out: list[bytes] = []
        self._mask_keys = MaskKeys()
        self._events: list[Event] = []
        self._close_sent = False
        self._close_transport = False
        self._abort_transport = False
        self._pending_failure: FrameError | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.path = ""
        self.request_headers: tuple[tuple[str, str], ...] = ()
        # deadlines (absolute times on the caller's clock)
        self.handshake_timeout = handshake_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self._now = now
        self._handshake_deadline = None if handshake_timeout is None else now + handshake_timeout
        self._ping_due: float | None = None
        self._pong_deadline: float | None = None
        self._close_deadline: float | None = None
        # flow control
        self.high_water = high_water
        self.low_water = high_water // 4 if low_water is None else min(low_water, high_water)
        self.max_buffered = max_buffered
        # Output over the cap is over high water too (so flagged ``_above``) unless the
        # cap is lower than high water: only then must every send look at the cap.
        self._cap_below_high = max_buffered is not None and max_buffered <= high_water
        self.overflow_code = overflow_code
        self._out_size = 0
        self._transport_buffered = 0
        self._above = False
        self._peer_debt = False
        self._held_pong: bytes | None = None

    # ----------------------------------------------------------- properties
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
        if self.status is not Status.CLOSED:
            self._closed(1006, "connection ended without a close frame")
        self._close_transport = True
        self._handshake_deadline = self._ping_due = None
        self._pong_deadline = self._close_deadline = None
        self._out = []
        self._out_size = self._transport_buffered = 0
        self._held_pong = None

    # --------------------------------------------------------------- timers
    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called (the caller's clock), or None."""
        # unrolled: the driver asks after every write
        t = self._close_deadline
        d = self._handshake_deadline
        if d is not None and (t is None or d < t):
            t = d
        d = self._pong_deadline
        if d is not None and (t is None or d < t):
            t = d
        d = self._ping_due
        if d is not None and (t is None or d < t):
            t = d
        return t

    def handle_timer(self, now: float) -> None:
        """Act on every deadline at or before ``now`` (see the module docstring)."""
        self._now = now
        if self._pending_failure is not None:
            self._apply_pending_failure()
        deadline = self._close_deadline
        if deadline is not None and now >= deadline:
            self._close_deadline = None
            self._give_up(f"close handshake not finished within {self.close_timeout} s", None)
            return
        deadline = self._handshake_deadline
        if deadline is not None and now >= deadline:
            self._handshake_deadline = None
            if self.status is Status.NEW:
                reason = f"handshake not completed within {self.handshake_timeout} s"
                self._handshake_timed_out()
                self._give_up(reason, HandshakeError(reason))
                return
        deadline = self._pong_deadline
        if deadline is not None and now >= deadline:
            self._pong_deadline = None
            if self.status is not Status.CLOSED and not self._close_transport:
                reason = f"did not answer pings: no pong within {self.ping_timeout} s"
                self._give_up(reason, ConnectionLost(reason))
                return
        deadline = self._ping_due
        if deadline is not None and now >= deadline:
            self._ping_due = None
            if self.status is Status.RUNNING:
                self._write_frame(OP_PING, b"ping")
                if self._pong_deadline is None and self.ping_timeout is not None:
                    self._pong_deadline = now + self.ping_timeout
                if self.ping_interval is not None:
                    self._ping_due = now + self.ping_interval

    def _handshake_timed_out(self) -> None:
        """Subclasses drop their HTTP state here."""

    def _give_up(self, reason: str, error: GoomerangError | None) -> None:
        """A deadline passed: CLOSED (1006) if not yet, abort the transport."""
        if self.status is not Status.CLOSED:
            self._closed(1006, reason, by_peer=False, error=error)
        self._close_transport = self._abort_transport = True
        self._handshake_deadline = self._ping_due = self._pong_deadline = None
        self._close_deadline = None

    def _closed(
        self,
        code: int,
        reason: str,
        *,
        by_peer: bool = True,
        error: GoomerangError | None = None,
    ) -> None:
        """Move to CLOSED and report it; start the close deadline; stop keep-alive."""
        move_connection(self, Status.CLOSED)
        self.close_code = code
        self.close_reason = reason
        self._events.append(ConnectionClosed(code, reason, by_peer=by_peer, error=error))
        self._closing()

    def _closing(self) -> None:
        """The close started: keep-alive stops, the close deadline starts (once)."""
        self._handshake_deadline = self._ping_due = self._pong_deadline = None
        if self._close_deadline is None and self.close_timeout is not None:
            self._close_deadline = self._now + self.close_timeout

    def _running(self) -> None:
        """The upgrade completed: RUNNING, keep-alive starts."""
        move_connection(self, Status.RUNNING)
        self._handshake_deadline = None
        if self.ping_interval is not None:
            self._ping_due = self._now + self.ping_interval

    # --------------------------------------------------------- flow control
    @property
    def buffered_amount(self) -> int:
        """Bytes of unsent output: held by the engine plus reported in the transport."""
        return self._out_size + self._transport_buffered

    def set_transport_buffer_size(self, size: int) -> None:
        """Report how many bytes the caller's transport still holds unsent.

        Call it after every write and whenever the transport drained (asyncio:
        ``transport.get_write_buffer_size()`` after ``write`` and in
        ``resume_writing``); then write ``data_to_send()`` again.
        """
        self._transport_buffered = size
        total = self._out_size + size
        if total > self.high_water:
            self._above = True
        elif total <= self.low_water:
            self._above = False
            self._peer_debt = False

    def is_writable(self) -> bool:
        """False from above ``high_water`` until back to ``low_water``: senders wait."""
        return not self._above

    def should_read(self) -> bool:
        """False while output caused by the peer's input keeps us above high water."""
        return not (self._above and self._peer_debt)

    def _queued(self, size: int, in_response: bool) -> None:
        """Account ``size`` new bytes of output (already appended to ``_out``)."""
        self._out_size += size
        if in_response:
            self._peer_debt = True
        if self._out_size + self._transport_buffered > self.high_water:
            self._above = True

    def _over_cap(self) -> bool:
        """Fail the connection (overflow_code) if it already holds more than max_buffered."""
        cap = self.max_buffered
        if cap is None or self._out_size + self._transport_buffered <= cap:
            return False
        reason = f"more than {cap} bytes of output unsent: the peer does not read"
        if self.status is not Status.CLOSED:
            self.fail(self.overflow_code, reason)
        self._give_up(reason, None)
        return True

    def close_expected(self) -> bool:
        """True while we wait for the peer to finish closing (arm the close timeout)."""
        return self.status is Status.CLOSING or (
            self.status is Status.CLOSED and not self._close_transport
        )

    # ---------------------------------------------------------------- input
    def receive_data(self, data: bytes | bytearray | memoryview, now: float | None = None) -> None:
        """Feed bytes read from the transport. Never raises on remote input."""
        if now is not None:
            self._now = now
        if self._pending_failure is not None:
            self._apply_pending_failure()
        if self.status is Status.NEW:
            self._receive_handshake(bytes(data))
        elif self.status is not Status.CLOSED:
            self._receive_frames(data)

    def receive_eof(self, now: float | None = None) -> None:
        """The transport was closed by the peer (or the read side ended)."""
        if now is not None:
            self._now = now
        if self._pending_failure is not None:
            self._apply_pending_failure()
        if self.status is Status.NEW:
            self._handshake_eof()
        if self.status is not Status.CLOSED:
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
        if failure is not None and self.status is not Status.CLOSED:
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
        classes = self.registry.table
        from_string = _frame_from_string
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
            try:
                frame = from_string(data)
            except _DECODE_ERRORS:
                self._bad_binary(data)
                continue
            kind = frame.kind
            if not is_client and kind in COMMAND_KINDS:
                self._on_command(kind, frame)
                continue
            cls = classes.get(kind)
            if cls is None:
                self._events.append(ErrorOccurred(UnknownKind(kind, frame.uuid)))
                continue
            body = frame.payload
            try:
                payload = cls.FromString(body)
            except _DECODE_ERRORS:
                self._bad_binary(data)
                continue
            headers = frame.headers
            creation = frame.creation  # an absent Timestamp reads as 0 s, 0 ns
            # received_message(...), inlined: a Message without its __init__ call
            message = _new_message(Message)
            message.payload = payload
            message.headers = {k: headers[k] for k in headers} if headers else {}  # not dict()
            message.kind = kind
            message.uuid = frame.uuid
            message.is_sync = frame.is_sync
            message.creation_ns = creation.seconds * 1_000_000_000 + creation.nanos
            message.payload_size = len(body)
            # MessageReceived(message) etc., without the __init__ call (same slots set)
            event: MessageReceived | SyncRequestReceived | SyncReplyReceived
            if not message.is_sync:
                event = _new_event(MessageReceived)
            elif is_client:
                event = _new_event(SyncReplyReceived)
            else:
                event = _new_event(SyncRequestReceived)
            event.message = message
            self._events.append(event)

    def _bad_binary(self, data: bytes) -> None:
        """Report a binary message that does not decode (the codec's error, re-raised here)."""
        try:
            unpack(data, self.registry)
        except GoomerangError as exc:
            self._events.append(ErrorOccurred(exc))

    def _on_command(self, kind: str, frame: pb.Frame) -> None:
        try:
            self._events.append(self._command(kind, frame))
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
            self._pong_deadline = None
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

    def _command(self, kind: str, frame: pb.Frame) -> Event:
        if kind == BROADCAST_CMD:
            bcast: Any = decode_payload(pb.BroadcastCmd, frame.payload, kind)
            return BroadcastRequested(
                decode_command_message(
                    bcast.kind, bcast.message, dict(frame.headers), self.registry
                )
            )
        if kind == PUBLISH_CMD:
            pub: Any = decode_payload(pb.PublishCmd, frame.payload, kind)
            return PublishRequested(
                pub.topic,
                decode_command_message(pub.kind, pub.message, dict(frame.headers), self.registry),
            )
        if kind == SUBSCRIBE_CMD:
            sub: Any = decode_payload(pb.SubscribeCmd, frame.payload, kind)
            return SubscribeRequested(sub.topic, sub.group)
        if kind == UNSUBSCRIBE_CMD:
            unsub: Any = decode_payload(pb.UnsubscribeCmd, frame.payload, kind)
            return UnsubscribeRequested(unsub.topic, unsub.group)
        raise AssertionError(kind)  # pragma: no cover - COMMAND_KINDS has only these four

    # --------------------------------------------------------------- output
    def _check_can_send(self) -> None:
        status = self.status
        if status is Status.RUNNING:
            return
        if status is Status.CLOSING:
            raise Closing("connection is closing: no new messages are accepted")
        raise NotRunning(f"connection is {status.name}: cannot send")

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        if self.is_client:
            return build_frame(opcode, payload, mask=True, mask_key=self._mask_keys.next())
        return build_frame(opcode, payload)

    def _write_frame(self, opcode: int, payload: bytes, in_response: bool = False) -> None:
        if opcode == OP_CLOSE:
            self._held_pong = None  # nothing follows our Close
        frame = self._frame(opcode, payload)
        self._out.append(frame)
        self._queued(len(frame), in_response)

    def send_bytes(self, envelope: bytes, *, in_response: bool = False) -> None:
        """Send already-packed Frame bytes as one binary message.

        Raises MessageTooLarge above our own ``max_message_size`` (nothing is queued).
        """
        self._over_cap()
        self._check_can_send()
        if len(envelope) > self._reader.max_message_size:
            raise MessageTooLarge(len(envelope), self._reader.max_message_size)
        self._write_frame(OP_BINARY, envelope, in_response)

    def send(
        self,
        message: Message[Any],
        *,
        uuid: str = "",
        is_sync: bool = False,
        in_response: bool = False,
    ) -> int:
        """Pack and queue ``message``; return its payload size in bytes.

        ``in_response``: the output answers the peer's input (a handler's
        reply), so above high water it pauses reading (``should_read()``)
        rather than only making senders wait. Raises NotRunning/Closing when
        not RUNNING (also after the output hard cap failed the connection).
        """
        if self._above or self._cap_below_high:
            cap = self.max_buffered
            if cap is not None and self._out_size + self._transport_buffered > cap:
                self._over_cap()
        if self.status is not Status.RUNNING:
            self._check_can_send()
        payload = message.payload.SerializeToString()
        size = len(payload)
        message.payload_size = size
        head = envelope_head(message.kind, size, message.headers, uuid, is_sync, self.clock())
        length = len(head) + size
        if length > self._reader.max_message_size:  # our own limit, checked first
            raise MessageTooLarge(length, self._reader.max_message_size)
        if self.is_client:
            frame = masked_binary(head + payload, self._mask_keys.next())
            self._out.append(frame)
            queued = len(frame)
        else:
            # gathered: header, envelope head and payload are joined once by data_to_send
            header = _HEAD16(0x82, 126, length) if 125 < length < 0x10000 else binary_header(length)
            self._out += (header, head, payload)
            queued = len(header) + length
        # what _queued does, inlined (one call less per message)
        self._out_size += queued
        if in_response:
            self._peer_debt = True
        if self._out_size + self._transport_buffered > self.high_water:
            self._above = True
        return size

    def send_raw(self, opcode: int, data: bytes) -> None:
        """Send one text (1) or binary (2) message as is (raw mode and tests)."""
        self._over_cap()
        self._check_can_send()
        if opcode not in (OP_TEXT, OP_BINARY):
            raise LocalProtocolError(f"send_raw takes opcode 1 or 2, not {opcode}")
        self._write_frame(opcode, data)

    def ping(self, payload: bytes = b"ping") -> None:
        """Send a ping (the Go client sends ``ping`` every heartbeat interval)."""
        self._check_can_send()
        if len(payload) > 125:
            raise LocalProtocolError("ping payload is limited to 125 bytes")
        self._write_frame(OP_PING, payload)

    def close(self, code: int = CLOSE_NORMAL, reason: str = "", now: float | None = None) -> None:
        """Start the close handshake (no-op when already closing or closed).

        Starts the close deadline (``close_timeout``) at ``now``.
        """
        if now is not None:
            self._now = now
        if self.status is Status.NEW:
            self._close_transport = True
            self._closed(code, reason, by_peer=False)
            return
        if self.status is not Status.RUNNING:
            return
        self._close_sent = True
        self._write_frame(OP_CLOSE, close_payload(code, reason))
        move_connection(self, Status.CLOSING)
        self._closing()

    def fail(self, code: int, reason: str, now: float | None = None) -> None:
        """Fail the connection: send a Close with ``code`` (if none was sent) and end it."""
        if now is not None:
            self._now = now
        if self.status is Status.CLOSED:
            return
        if not self._close_sent and self.status is not Status.NEW:
            self._close_sent = True
            self._write_frame(OP_CLOSE, close_payload(code, reason))
        self._close_transport = True
        self._closed(code, reason, by_peer=False, error=RemoteProtocolError(reason, code))


__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "BaseConnection", "Clock"]
