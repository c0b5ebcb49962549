"""Output of a connection: framing, sending and starting the close.

Every frame we send is built here and queued for ``data_to_send()``: messages
(``send``: the per-message path, which packs the envelope and frames it in one
go; ``send_bytes``, ``send_raw``), Pings, Pongs and our Close (``close``,
``fail``). A client masks every frame (RFC 6455 section 5.3), a server none.
Sending when not RUNNING raises NotRunning or Closing; a message above our own
``max_message_size`` raises MessageTooLarge and queues nothing.

:class:`Output` is a part of :class:`~goomerang_proto.connection.BaseConnection`
(a base class of it, see :mod:`goomerang_proto.deadlines` for the chain). ``send``
updates the flow-control counters in place (one call less per message).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from . import status as _status
from .codec import envelope_head
from .errors import Closing, LocalProtocolError, MessageTooLarge, NotRunning, RemoteProtocolError
from .flow import FlowControl
from .frames import (
    _HEAD16,
    CLOSE_NORMAL,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    FrameReader,
    MaskKeys,
    binary_header,
    build_frame,
    close_payload,
    masked_binary,
)
from .message import Message
from .status import move_connection

# the status constants, Final here: compiled code holds them in C statics
NEW: Final = _status.NEW
RUNNING: Final = _status.RUNNING
CLOSING: Final = _status.CLOSING
CLOSED: Final = _status.CLOSED

Clock = Callable[[], int]
"""The envelope's creation time: nanoseconds since the Unix epoch (``time.time_ns``)."""


class Output(FlowControl):
    """Frames and queues what the connection sends; starts and fails the close."""

    __slots__ = (
        "_close_sent",
        "_mask_keys",
        "_out",
    )

    is_client = False
    # the connection's own state that the output reads
    clock: Clock
    _reader: FrameReader
    # the output's state
    _out: list[bytes]
    _mask_keys: MaskKeys
    _close_sent: bool

    def _setup_output(self) -> None:
        self._out = []
        self._mask_keys = MaskKeys()
        self._close_sent = False

    def _check_can_send(self) -> None:
        status = self.status
        if status is RUNNING:
            return
        if status is CLOSING:
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
        if self.status is not RUNNING:
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
        if self.status is NEW:
            self._close_transport = True
            self._closed(code, reason, by_peer=False)
            return
        if self.status is not RUNNING:
            return
        self._close_sent = True
        self._write_frame(OP_CLOSE, close_payload(code, reason))
        move_connection(self, CLOSING)
        self._closing()

    def fail(self, code: int, reason: str, now: float | None = None) -> None:
        """Fail the connection: send a Close with ``code`` (if none was sent) and end it."""
        if now is not None:
            self._now = now
        if self.status is CLOSED:
            return
        if not self._close_sent and self.status is not NEW:
            self._close_sent = True
            self._write_frame(OP_CLOSE, close_payload(code, reason))
        self._close_transport = True
        self._closed(code, reason, by_peer=False, error=RemoteProtocolError(reason, code))

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
        if self.status is not CLOSED:
            self.fail(self.overflow_code, reason)
        self._give_up(reason, None)
        return True


__all__ = ["Clock", "Output"]
