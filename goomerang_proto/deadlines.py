"""Deadlines of a connection: handshake, keep-alive (ping/pong) and close.

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

:class:`Deadlines` is a part of :class:`~goomerang_proto.connection.BaseConnection`
(a base class of it). It owns the deadline attributes and acts on them, and
calls back only into the connection's status changes (``_closed``), its output
(``_write_frame``) and its pending framing fault.

The parts form one chain of single inheritance, Deadlines <- FlowControl <-
Output <- BaseConnection: mypyc (the compiled build) takes no mixin but a
``@trait``, and mypyc 2.4.1 fails compiling a trait that sets a ``bool`` or
``int`` attribute (``emit_attr_bitmap_set``: ValueError). The
flow-control calls a driver makes on every write sit nearest the connection
class: a compiled method checks its receiver's type by walking the MRO.
"""

from __future__ import annotations

from .errors import ConnectionLost, GoomerangError, HandshakeError
from .frames import OP_PING, FrameError
from .status import CLOSED, CLOSING, NEW, RUNNING, Status, move_connection


class Deadlines:
    """Handshake, ping/pong and close deadlines (absolute times on the caller's clock)."""

    __slots__ = (
        "_abort_transport",
        "_close_deadline",
        "_close_transport",
        "_handshake_deadline",
        "_now",
        "_ping_due",
        "_pong_deadline",
        "close_timeout",
        "handshake_timeout",
        "ping_interval",
        "ping_timeout",
    )

    # the connection's own state that the deadlines read or set
    status: Status
    _close_transport: bool
    _abort_transport: bool
    _pending_failure: FrameError | None
    # the deadlines' state
    handshake_timeout: float | None
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float | None
    _now: float
    _handshake_deadline: float | None
    _ping_due: float | None
    _pong_deadline: float | None
    _close_deadline: float | None

    def _setup_deadlines(
        self,
        handshake_timeout: float | None,
        ping_interval: float | None,
        ping_timeout: float | None,
        close_timeout: float | None,
        now: float,
    ) -> None:
        self.handshake_timeout = handshake_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self._now = now
        self._handshake_deadline = None if handshake_timeout is None else now + handshake_timeout
        self._ping_due = None
        self._pong_deadline = None
        self._close_deadline = None

    # The connection's parts the deadlines act through (BaseConnection defines them).
    def _closed(
        self,
        code: int,
        reason: str,
        *,
        by_peer: bool = True,
        error: GoomerangError | None = None,
    ) -> None:  # pragma: no cover - BaseConnection's
        raise NotImplementedError

    def _write_frame(
        self, opcode: int, payload: bytes, in_response: bool = False
    ) -> None:  # pragma: no cover - BaseConnection's
        raise NotImplementedError

    def _apply_pending_failure(self) -> None:  # pragma: no cover - BaseConnection's
        raise NotImplementedError

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
            if self.status is NEW:
                reason = f"handshake not completed within {self.handshake_timeout} s"
                self._handshake_timed_out()
                self._give_up(reason, HandshakeError(reason))
                return
        deadline = self._pong_deadline
        if deadline is not None and now >= deadline:
            self._pong_deadline = None
            if self.status is not CLOSED and not self._close_transport:
                reason = f"did not answer pings: no pong within {self.ping_timeout} s"
                self._give_up(reason, ConnectionLost(reason))
                return
        deadline = self._ping_due
        if deadline is not None and now >= deadline:
            self._ping_due = None
            if self.status is RUNNING:
                self._write_frame(OP_PING, b"ping")
                if self._pong_deadline is None and self.ping_timeout is not None:
                    self._pong_deadline = now + self.ping_timeout
                if self.ping_interval is not None:
                    self._ping_due = now + self.ping_interval

    def _handshake_timed_out(self) -> None:
        """Subclasses drop their HTTP state here."""

    def _give_up(self, reason: str, error: GoomerangError | None) -> None:
        """A deadline passed: CLOSED (1006) if not yet, abort the transport."""
        if self.status is not CLOSED:
            self._closed(1006, reason, by_peer=False, error=error)
        self._close_transport = self._abort_transport = True
        self._stop_deadlines()

    def _stop_deadlines(self) -> None:
        """No deadline applies any more (the transport is going or gone)."""
        self._handshake_deadline = self._ping_due = self._pong_deadline = None
        self._close_deadline = None

    def _pong_received(self) -> None:
        """A Pong came: the peer answers, no pong deadline."""
        self._pong_deadline = None

    def _closing(self) -> None:
        """The close started: keep-alive stops, the close deadline starts (once)."""
        self._handshake_deadline = self._ping_due = self._pong_deadline = None
        if self._close_deadline is None and self.close_timeout is not None:
            self._close_deadline = self._now + self.close_timeout

    def _running(self) -> None:
        """The upgrade completed: RUNNING, keep-alive starts."""
        move_connection(self, RUNNING)
        self._handshake_deadline = None
        if self.ping_interval is not None:
            self._ping_due = self._now + self.ping_interval

    def close_expected(self) -> bool:
        """True while we wait for the peer to finish closing (arm the close timeout)."""
        return self.status is CLOSING or (self.status is CLOSED and not self._close_transport)


__all__ = ["Deadlines"]
