"""A hypothesis state machine to subclass: your handlers against the protocol's invariants.

::

    class EchoMachine(HandlerMachine):
        message_strategy = strategies.messages(MessageV1)

        def configure(self, server: PairServer) -> None:
            server.handle(MessageV1, echo)

    TestEcho = EchoMachine.TestCase

Hypothesis then interleaves async and sync sends from several clients,
partial runs, clock advances and closes, and checks after every step:

* a sync request gets at most one reply, and only the client that asked gets
  it (with ``replies_required = True``: exactly one, once the pair is quiet);
* each client receives exactly what the server queued for it, in the order
  the handlers (and fan-out) produced it;
* the close handshake completes: after teardown every connection is CLOSED
  on both sides, with code 1000.

Needs ``hypothesis`` (``pip install goomerang[testing]``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ..codec import pack
from ..errors import UnexpectedReply
from ..message import Message
from ..status import Status
from . import strategies
from .endpoints import PairClient, PairServer
from .pair import Pair


def _wire_form(message: Message[Any]) -> bytes:
    """What identifies a message on the wire, apart from uuid, timestamp and header order."""
    return pack(Message(message.payload, dict(sorted(message.headers.items())), kind=message.kind))


class HandlerMachine(RuleBasedStateMachine):
    """Base class: override :meth:`configure`; optionally the class attributes below.

    * ``message_strategy``: what clients send (default: ``strategies.messages()``,
      ``MessageV1`` with arbitrary headers);
    * ``clients``: how many client connections (default 2);
    * ``replies_required``: every sync request must get exactly one reply (default False);
    * ``pair_options``: keyword arguments for :class:`Pair`.
    """

    message_strategy: ClassVar[st.SearchStrategy[Message[Any]]] = strategies.messages()
    clients: ClassVar[int] = 2
    replies_required: ClassVar[bool] = False
    pair_options: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.pair = Pair(connect=False, **self.pair_options)
        self.configure(self.pair.server)
        for _ in range(self.clients):
            self.pair.connect()
        self.asked: dict[str, PairClient] = {}
        """Sync request uuid -> the client that sent it."""

    def configure(self, server: PairServer) -> None:
        """Register handlers and middlewares on ``server`` (override this)."""
        raise NotImplementedError("HandlerMachine subclasses register handlers in configure()")

    # ---------------------------------------------------------------- rules
    def _client(self, index: int) -> PairClient:
        return self.pair.clients[index % len(self.pair.clients)]

    @rule(data=st.data(), index=st.integers(0, 15), sync=st.booleans())
    def send(self, data: st.DataObject, index: int, sync: bool) -> None:
        """A client sends one message (async or sync) if it is still running."""
        client = self._client(index)
        if client.status is not Status.RUNNING:
            return
        message = data.draw(self.message_strategy, label="message")
        if sync:
            self.asked[client.send_sync(message)] = client
        else:
            client.send(message)

    @rule()
    def run(self) -> None:
        """Deliver everything and run the handlers until quiet."""
        self.pair.run()
        self.check_replies_complete()

    @rule(seconds=st.floats(0, 30, allow_nan=False))
    def advance(self, seconds: float) -> None:
        """Let virtual time pass (deadlines fire)."""
        self.pair.advance(seconds)

    @precondition(lambda self: sum(c.status is Status.RUNNING for c in self.pair.clients) > 1)
    @rule(index=st.integers(0, 15))
    def close(self, index: int) -> None:
        """One client starts the close handshake (at least one stays open)."""
        self._client(index).close()

    # ----------------------------------------------------------- invariants
    @invariant()
    def replies_reach_only_their_caller(self) -> None:
        """A sync reply carries a uuid its own client asked, and arrives at most once."""
        for client in self.pair.clients:
            seen: set[str] = set()
            for message in client.inbox:
                if not message.is_sync:
                    continue
                assert message.uuid not in seen, f"two replies to sync request {message.uuid}"
                seen.add(message.uuid)
                asker = self.asked.get(message.uuid)
                assert asker is client, (
                    f"client {client.conn_id} got the reply to {message.uuid}, asked by "
                    f"{asker.conn_id if asker else 'nobody'}"
                )
            stray = [e for e in client.errors if isinstance(e, UnexpectedReply)]
            assert not stray, stray

    @invariant()
    def delivered_in_production_order(self) -> None:
        """What each client received is a prefix of what the server queued for it, in order."""
        for client in self.pair.clients:
            produced = [_wire_form(m) for m in self.pair.server.sent[client]]
            got = [_wire_form(m) for m in client.inbox]
            assert got == produced[: len(got)], (
                f"client {client.conn_id}: received order differs from production order"
            )

    def check_replies_complete(self) -> None:
        """Once quiet: each client got everything queued for it (and each reply, if required)."""
        for client in self.pair.clients:
            if client.status is Status.RUNNING:
                assert len(client.inbox) == len(self.pair.server.sent[client])
                if self.replies_required:
                    assert not client.pending, f"sync requests without a reply: {client.pending}"

    def teardown(self) -> None:
        """Close every client; the close handshake must complete on both sides."""
        pair = getattr(self, "pair", None)
        if pair is None:
            return
        pair.close_all()
        for client in pair.clients:
            assert client.status is Status.CLOSED, client
            assert client.server_conn is not None
            assert client.server_conn.status is Status.CLOSED
            assert client.closed is not None and client.closed.code == 1000, client.closed


__all__ = ["HandlerMachine"]
