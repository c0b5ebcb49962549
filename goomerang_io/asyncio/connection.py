"""The asyncio driver of one engine connection: one ``asyncio.Protocol`` for server and client.

It follows the engine's loop contract (``goomerang_proto.connection``): feed
each read with ``now = loop.time()``, hand the events to the owner once
``receive_data`` returned, write ``data_to_send()``, report the transport's
unsent bytes, pause reading while ``should_read()`` is False, wake senders
waiting in ``await send`` once ``is_writable()``, keep one timer armed at
``get_timer()``, and close or abort the transport when the engine says so.
Deadlines and flow-control rules live in the engine; nothing here decides them.

Subclasses (the server's and the client's connection) implement
``handle_events`` and may override ``after_read`` (write what the read fanned
out), ``want_read`` (an extra reason to pause reading) and ``lost``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, cast

from mypy_extensions import mypyc_attr

from goomerang_proto import BaseConnection, Message, status
from goomerang_proto import events as ev

from ..awaitables import AfterDrain, Ready

FEED_CHUNK: Final = 16 * 1024
"""Bytes fed to the engine at a time: a bigger read is fed (and handled) in slices."""
# Final module names: the compiled build holds them in C statics (a plain global is a
# dict lookup per use there)
RUNNING: Final = status.RUNNING
CLOSED: Final = status.CLOSED


@mypyc_attr(allow_interpreted_subclasses=True)
class Connection(asyncio.Protocol):
    """One transport and its engine.

    The compiled build (``GOOMERANG_COMPILE=1``) compiles this class with mypyc;
    subclasses written in Python (the client's protocol, an embedder's) stay
    allowed, as ``mypyc_attr(allow_interpreted_subclasses=True)`` says.
    """

    def __init__(self, engine: BaseConnection) -> None:
        self.engine = engine
        self.transport: asyncio.Transport | None = None
        """The transport while it is open: None before ``connection_made`` and after
        ``connection_lost`` (nothing is written, closed or aborted then)."""
        self.peer: tuple[str, int] | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._reading_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._flush_pending = False
        self._in_batch = False
        self._closing_transport = False
        self._linger: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()
        """Resolved once the transport is really gone (closed or aborted)."""

    # ---------------------------------------------------------- subclass hooks
    def handle_events(self, events: list[ev.Event]) -> None:  # pragma: no cover - abstract
        """Act on the engine's events (called after ``receive_data`` returned)."""
        raise NotImplementedError

    def after_read(self) -> None:
        """Called once a read's events were handled, before the output is written."""

    def want_read(self) -> bool:
        """An extra reason to pause reading (e.g. too many messages wait for handlers)."""
        return True

    def lost(self) -> None:
        """The transport is gone (``closed`` is resolved just after)."""

    # --------------------------------------------------------------- transport
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = (str(peer[0]), int(peer[1]))
        engine = self.engine
        transport.set_write_buffer_limits(high=engine.high_water, low=engine.low_water)
        self.flush()

    def data_received(self, data: bytes | bytearray | memoryview) -> None:
        engine = self.engine
        self._in_batch = True
        try:
            if len(data) <= FEED_CHUNK:
                engine.receive_data(data, self._loop.time())
                events = engine.events()  # one call: [] when none
                if events:
                    self.handle_events(events)
            else:
                # A big read is fed in slices: each slice's messages are handled and
                # freed before the next is decoded, so a read's worth of messages
                # never lives at once (less memory held, far less cyclic-GC work).
                now = self._loop.time()
                view = memoryview(data)
                for start in range(0, len(data), FEED_CHUNK):
                    engine.receive_data(view[start : start + FEED_CHUNK], now)
                    events = engine.events()
                    if events:
                        self.handle_events(events)
            if engine.apply_pending():  # True when it (or a handler) added events
                self.handle_events(engine.events())
        finally:
            self._in_batch = False
        self.after_read()
        self.flush()

    def eof_received(self) -> bool | None:
        self.engine.receive_eof(self._loop.time())
        self.process()
        self.flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        # From here on nothing may touch the transport (uvloop raises on a closed
        # one): flush() and the rest see None and do nothing.
        self.transport = None
        engine = self.engine
        if engine.status is not CLOSED:
            engine.receive_eof(self._loop.time())
        engine.transport_closed()
        self.process()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._wake_senders()
        self.lost()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.engine.set_transport_buffer_size(self.transport.get_write_buffer_size())

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.engine.set_transport_buffer_size(self.transport.get_write_buffer_size())
        self.flush()

    # ------------------------------------------------------------------ output
    def process(self) -> None:
        """Hand the engine's pending events to ``handle_events``."""
        engine = self.engine
        while engine.has_events():
            self.handle_events(engine.events())

    def schedule_flush(self) -> None:
        """Write on the next loop turn (sends made outside a read batch are gathered)."""
        if not self._flush_pending and not self._in_batch:
            self._flush_pending = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what the engine queued, apply its flow-control state, arm its timer."""
        self._flush_pending = False
        transport = self.transport
        if transport is None:
            return
        engine = self.engine
        data = engine.data_to_send()
        if data:
            transport.write(data)
            engine.set_transport_buffer_size(transport.get_write_buffer_size())
        if engine.has_events():
            self.process()
            data = engine.data_to_send()
            if data:
                transport.write(data)
                engine.set_transport_buffer_size(transport.get_write_buffer_size())
        if engine.status is not RUNNING:  # neither can be true while RUNNING
            if engine.should_abort_transport():
                transport.abort()
                return
            if engine.should_close_transport() and not self._closing_transport:
                self._closing_transport = True
                self._close_transport(transport)
        # flow control: reading (a half-closed transport reads on until the peer ends
        # TCP, see _close_transport), then waiting senders
        if self._linger is not None:
            pass
        elif engine.should_read() and self.want_read():
            if self._reading_paused:
                self._reading_paused = False
                if not self._closing_transport:
                    transport.resume_reading()
        elif not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()
        if self._drain is not None and engine.is_writable():
            self._wake_senders()
        at = engine.get_timer()
        if at != self._timer_at:
            self._arm(at)

    def _close_transport(self, transport: asyncio.Transport) -> None:
        """Close TCP without destroying the Close frame still on its way to the peer.

        Closing a socket whose input holds unread bytes makes the kernel send
        RST, and a peer that gets RST before it read our Close frame reports
        1006 instead of our code (a peer still sending a message we refused as
        too big, say). So, like websockets and nginx's lingering close, send
        FIN after the queued bytes (``write_eof``), read and drop what still
        comes until the peer ends TCP, and abort after ``close_timeout`` at
        most. TLS transports cannot half-close: they close at once.
        """
        timeout = self.engine.close_timeout
        if timeout is None or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._linger = self._loop.call_later(timeout, transport.abort)

    def _arm(self, at: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = None if at is None else self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.engine.handle_timer(self._loop.time())
        self.process()
        self.flush()

    def _wake_senders(self) -> None:
        drain = self._drain
        self._drain = None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def write_message(
        self, message: Message[Any], uuid: str = "", *, in_response: bool = False
    ) -> Ready[int] | AfterDrain[int]:
        """Queue ``message``; the awaitable waits while the connection is not writable."""
        engine = self.engine
        try:
            size = engine.send(message, uuid=uuid, is_sync=bool(uuid), in_response=in_response)
        finally:
            self.schedule_flush()
        if engine.is_writable():
            return Ready(size)
        return AfterDrain(self.drain_future(), size)

    def drain_future(self) -> asyncio.Future[None]:
        """A future resolved when the connection is writable again (or gone)."""
        if self._drain is None or self._drain.done():
            self._drain = self._loop.create_future()
        return self._drain

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake with ``code`` (the engine arms the close timeout)."""
        self.engine.close(code, reason, now=self._loop.time())
        self.process()
        self.flush()

    def abort(self) -> None:
        """Drop the connection now."""
        self.engine.abort()
        self.process()
        self.flush()
