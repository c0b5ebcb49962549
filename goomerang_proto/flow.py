"""Flow control of a connection: unsent output against high and low water.

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

:class:`FlowControl` is a part of :class:`~goomerang_proto.connection.BaseConnection`
(a base class of it, see :mod:`goomerang_proto.deadlines` for the chain); it
owns the counters and the water marks. The per-message paths (``send`` and
``_queued`` in :mod:`goomerang_proto.output`, ``data_to_send``) update the
same counters in place, so that a message costs no extra call.
"""

from __future__ import annotations

from .deadlines import Deadlines

DEFAULT_HIGH_WATER = 64 * 1024
"""Default ``high_water``: bytes of unsent output above which the connection is not writable."""


class FlowControl(Deadlines):
    """Unsent-output accounting: ``high_water``/``low_water`` hysteresis and the hard cap."""

    __slots__ = (
        "_above",
        "_cap_below_high",
        "_held_pong",
        "_out_size",
        "_peer_debt",
        "_transport_buffered",
        "high_water",
        "low_water",
        "max_buffered",
        "overflow_code",
    )

    high_water: int
    low_water: int
    max_buffered: int | None
    overflow_code: int
    _cap_below_high: bool
    _out_size: int
    _transport_buffered: int
    _above: bool
    _peer_debt: bool
    _held_pong: bytes | None

    def _setup_flow(
        self, high_water: int, low_water: int | None, max_buffered: int | None, overflow_code: int
    ) -> None:
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
        self._held_pong = None

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


__all__ = ["DEFAULT_HIGH_WATER", "FlowControl"]
