"""A client and a server engine wired back to back through in-memory byte pipes.

A hypothesis state machine interleaves sends, sync sends, pings and closes
from either side, partial deliveries of arbitrary sizes and abrupt transport
ends (EOF). Whatever the interleaving, after draining:

* both sides are CLOSED and both should close their transport;
* no frame is written after a side sent its Close;
* every message sent before a side's close arrives, in order (a prefix only
  when a transport was cut abruptly);
* should_close_transport() follows the engine docs: the server's turns true
  when it reaches CLOSED; the client's only when its transport ended (it
  waits for the server's TCP close, RFC 6455 section 7.1.1) or it aborted.
"""

from __future__ import annotations

import pytest
from engine_helpers import REGISTRY, WS_KEY
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from goomerang_proto import events as ev
from goomerang_proto import frames as fr
from goomerang_proto.client_connection import ClientConnection
from goomerang_proto.connection import BaseConnection
from goomerang_proto.errors import Closing, NotRunning
from goomerang_proto.message import Message
from goomerang_proto.pb import goomerang_example_pb2 as ex
from goomerang_proto.server_connection import ServerConnection
from goomerang_proto.status import Status

SIDE = st.sampled_from(["client", "server"])
TEXT = st.text(max_size=12)


class Pipe:
    """One direction of a TCP connection: bytes in flight, then maybe the writer's FIN."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.fin = False
        self.fin_delivered = False


class End:
    """One side: its engine, what it wrote and received, and its transport state."""

    def __init__(self, name: str, conn: BaseConnection) -> None:
        self.name = name
        self.conn = conn
        self.sent: list[str] = []  # texts whose send call succeeded, in order
        self.received: list[str] = []  # texts the peer's messages carried, in order
        self.events: list[ev.Event] = []
        self.observer = fr.FrameReader(expect_masked=conn.is_client, max_message_size=1 << 30)
        self.written_ops: list[int] = []
        self.transport_closed = False
        self.aborted = False


class ConnectionPair(RuleBasedStateMachine):
    """Client and server engines plus the two pipes between them."""

    def __init__(self) -> None:
        super().__init__()
        self.c2s = Pipe()
        self.s2c = Pipe()
        self.client = End("client", ClientConnection("127.0.0.1:1", registry=REGISTRY, key=WS_KEY))
        self.server = End("server", ServerConnection(registry=REGISTRY))

    @initialize()
    def handshake(self) -> None:
        c, s = self.client.conn, self.server.conn
        request = c.data_to_send()
        assert request.startswith(b"GET /ws HTTP/1.1\r\n")
        assert request.endswith(b"\r\n\r\n") and b"Sec-WebSocket-Version: 13" in request
        s.receive_data(request)
        response = s.data_to_send()
        c.receive_data(response)
        assert c.status is Status.RUNNING and s.status is Status.RUNNING
        assert [type(e) for e in c.events()] == [ev.Connected]
        assert [type(e) for e in s.events()] == [ev.Connected]

    # -------------------------------------------------------------- helpers
    def _end(self, name: str) -> End:
        return self.client if name == "client" else self.server

    def _peer(self, end: End) -> End:
        return self.server if end is self.client else self.client

    def _out_pipe(self, end: End) -> Pipe:
        return self.c2s if end is self.client else self.s2c

    def _in_pipe(self, end: End) -> Pipe:
        return self.s2c if end is self.client else self.c2s

    def _collect(self, end: End) -> None:
        for event in end.conn.events():
            assert not isinstance(event, ev.ErrorOccurred), event
            assert not any(isinstance(e, ev.ConnectionClosed) for e in end.events), (
                f"{end.name}: event after ConnectionClosed: {event}"
            )
            end.events.append(event)
            if isinstance(
                event, ev.MessageReceived | ev.SyncRequestReceived | ev.SyncReplyReceived
            ):
                end.received.append(event.message.payload.message)
            elif isinstance(event, ev.ConnectionClosed):
                assert event.error is None, event
                assert event.code in (fr.CLOSE_NORMAL, fr.CLOSE_ABNORMAL), event

    def _flush(self, end: End) -> None:
        """Do what an adapter does after every engine call: events, write, maybe close TCP."""
        self._collect(end)
        end.conn.apply_pending()
        out = end.conn.data_to_send()
        self._collect(end)
        if out:
            assert not end.transport_closed, f"{end.name} wrote after closing its transport"
            frames: list[tuple[int, bytes]] = []
            end.observer.feed(out, frames)
            assert end.observer.buffered == 0
            for opcode, _ in frames:
                assert fr.OP_CLOSE not in end.written_ops, (
                    f"{end.name} wrote opcode {opcode} after its Close"
                )
                end.written_ops.append(opcode)
            self._out_pipe(end).buf += out
        if end.conn.should_close_transport() and not end.transport_closed:
            self._close_transport(end)

    def _close_transport(self, end: End) -> None:
        end.transport_closed = True
        self._out_pipe(end).fin = True
        self._in_pipe(end).buf.clear()  # unread bytes die with the socket

    # ---------------------------------------------------------------- rules
    @rule(side=SIDE, texts=st.lists(TEXT, min_size=1, max_size=4), sync=st.booleans())
    def send(self, side: str, texts: list[str], sync: bool) -> None:
        end = self._end(side)
        conn = end.conn
        for text in texts:
            msg = Message(ex.MessageV1(message=text), {"n": str(len(end.sent))})
            if conn.status is Status.RUNNING:
                if sync and isinstance(conn, ClientConnection):
                    conn.send_sync(msg)
                else:
                    conn.send(msg, uuid="u" if sync else "", is_sync=sync)
                end.sent.append(text)
            else:
                with pytest.raises((NotRunning, Closing)):
                    conn.send(msg)
        self._flush(end)

    @rule(side=SIDE, payload=st.binary(max_size=125))
    def ping(self, side: str, payload: bytes) -> None:
        end = self._end(side)
        if end.conn.status is Status.RUNNING:
            end.conn.ping(payload)
        else:
            with pytest.raises((NotRunning, Closing)):
                end.conn.ping(payload)
        self._flush(end)

    @rule(side=SIDE)
    def close(self, side: str) -> None:
        end = self._end(side)
        end.conn.close()
        self._flush(end)

    @rule(side=SIDE, n=st.integers(1, 300))
    def deliver(self, side: str, n: int) -> None:
        """Deliver up to ``n`` bytes written by ``side`` to its peer (or the FIN)."""
        self._deliver(self._end(side), n)

    @precondition(lambda self: not (self.client.transport_closed and self.server.transport_closed))
    @rule(side=SIDE)
    def eof(self, side: str) -> None:
        """``side``'s transport ends abruptly (e.g. its close timeout fired)."""
        end = self._end(side)
        if end.transport_closed:
            return
        end.conn.abort()
        end.aborted = True
        assert end.conn.status is Status.CLOSED and end.conn.should_close_transport()
        self._flush(end)
        assert end.transport_closed

    def _deliver(self, writer: End, n: int) -> bool:
        reader = self._peer(writer)
        pipe = self._out_pipe(writer)
        if reader.transport_closed:
            pipe.buf.clear()
            return False
        if pipe.buf:
            chunk = bytes(pipe.buf[:n])
            del pipe.buf[:n]
            reader.conn.receive_data(chunk)
        elif pipe.fin and not pipe.fin_delivered:
            pipe.fin_delivered = True
            reader.conn.receive_eof()
        else:
            return False
        self._flush(reader)
        return True

    # ----------------------------------------------------------- invariants
    @invariant()
    def delivered_in_order(self) -> None:
        for end in (self.client, self.server):
            peer = self._peer(end)
            assert peer.received == end.sent[: len(peer.received)]

    @invariant()
    def transport_close_follows_the_docs(self) -> None:
        s, c = self.server.conn, self.client.conn
        assert s.should_close_transport() == (s.status is Status.CLOSED)
        if c.should_close_transport():
            assert c.status is Status.CLOSED
            assert self.s2c.fin_delivered or self.client.aborted
        elif c.status is Status.CLOSED:
            assert c.close_expected()  # wait for the server's TCP close (with a timeout)

    @invariant()
    def closing_means_close_sent(self) -> None:
        for end in (self.client, self.server):
            if end.conn.status is Status.CLOSING:
                assert end.written_ops[-1:] == [fr.OP_CLOSE]

    def teardown(self) -> None:
        if not hasattr(self, "client"):
            return
        c, s = self.client.conn, self.server.conn
        if c.status is Status.RUNNING and s.status is Status.RUNNING:
            c.close()
            self._flush(self.client)
        for _ in range(100):
            progressed = self._deliver(self.client, 1 << 20)
            progressed = self._deliver(self.server, 1 << 20) or progressed
            if not progressed:
                break
        assert c.status is Status.CLOSED and s.status is Status.CLOSED
        assert c.should_close_transport() and s.should_close_transport()
        for end in (self.client, self.server):
            closes = [e for e in end.events if isinstance(e, ev.ConnectionClosed)]
            assert len(closes) == 1 and end.events[-1] is closes[0]
        if not (self.client.aborted or self.server.aborted):
            assert self.server.received == self.client.sent
            assert self.client.received == self.server.sent
            for end in (self.client, self.server):
                assert end.written_ops[-1] == fr.OP_CLOSE
                closed = end.events[-1]
                assert isinstance(closed, ev.ConnectionClosed) and closed.code == 1000


ConnectionPair.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.timeout(120)
def test_connection_pair_machine() -> None:
    ConnectionPair.TestCase().runTest()
