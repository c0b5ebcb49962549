"""An in-memory goomerang server and clients over the engine: no sockets, no loop, no clock.

``pair = Pair()`` builds a server endpoint and one connected client; register
handlers and middlewares on ``pair.server`` (the same ``handle`` /
``middleware`` / ``register_message`` as ``goomerang_io.Server``), send from
``pair.client``, then ``pair.run()`` moves every byte both ways and runs the
handlers until nothing is left to do. ``pair.advance(seconds)`` moves the
:class:`VirtualClock` and fires the engine's deadlines that fall due
(keep-alive pings, pong, handshake and close timeouts), so timeouts are tested
in microseconds, deterministically.

Handlers are called as in the real server: ``handler(sender, message)``;
``sender.send(reply)`` replies (to a sync request: same ``uuid``,
``is_sync``). A handler that returns an awaitable is driven to completion by
the pair's ``runner``: by default a loop-free driver that accepts
coroutines which only await other coroutines or ``sender.send``; pass
``runner=asyncio.run`` (or any callable that takes an awaitable) for handlers
that await real IO or ``asyncio.sleep``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import events as ev
from ..client_connection import ClientConnection
from ..connection import BaseConnection
from ..errors import (
    Closing,
    GoomerangError,
    HandlerError,
    NotRunning,
    UnexpectedReply,
    UnknownKind,
)
from ..message import Message
from ..registry import Registry
from ..router import Handler
from ..server_connection import ServerConnection, prepare
from ..status import Status
from .clock import VirtualClock
from .endpoints import PairClient, PairSender, PairServer, takes
from .runner import Runner, drive

DEFAULT_HOST = "goomerang.test:80"
MAX_ROUNDS = 100_000


class _Wire:
    """The two byte streams of one connection, whether each writer ended it, and holds."""

    __slots__ = (
        "c2s",
        "client_fin",
        "eof_to_client",
        "eof_to_server",
        "hold_c2s",
        "hold_s2c",
        "s2c",
        "server_fin",
    )

    def __init__(self) -> None:
        self.c2s = bytearray()
        self.s2c = bytearray()
        self.client_fin = False
        self.server_fin = False
        self.eof_to_client = False
        self.eof_to_server = False
        self.hold_c2s = False
        self.hold_s2c = False


def next_deadline(conn: BaseConnection) -> float | None:
    """When ``conn`` next needs ``handle_timer`` (absolute seconds), or None.

    The engine's deadline API: ``get_timer() -> float | None`` and
    ``handle_timer(now)``. An engine without it has no deadlines to fire.
    """
    get_timer: Callable[[], float | None] | None = getattr(conn, "get_timer", None)
    return get_timer() if get_timer is not None else None


def fire_timer(conn: BaseConnection, now: float) -> bool:
    """Call ``conn.handle_timer(now)`` when its deadline is due; True when it was."""
    when = next_deadline(conn)
    if when is None or when > now:
        return False
    handle: Callable[[float], None] = getattr(conn, "handle_timer")  # noqa: B009
    handle(now)
    return True


class Pair:
    """A goomerang server and its clients, connected in memory.

    ``Pair(registry=None, *, clock=None, runner=None, raise_errors=True,
    chunk=None, client_options=None, server_options=None, connect=True,
    max_rounds=100_000)``:

    * ``registry``: message types known to both sides (handlers add theirs);
    * ``runner``: callable that runs a handler's awaitable (default: :func:`drive`);
    * ``raise_errors``: a handler's exception propagates out of ``run()``
      (default); with False it is recorded in ``server.errors`` as
      :class:`HandlerError`, as the real server's ``on_error`` hook gets it;
    * ``chunk``: deliver at most this many bytes per read (exercises partial reads);
    * ``client_options`` / ``server_options``: keyword arguments for the
      engine connections (``max_message_size``, and the deadline options
      ``ping_interval`` / ``ping_timeout`` / ``handshake_timeout`` /
      ``close_timeout`` in seconds where the engine has them);
    * ``connect``: create ``pair.client`` and complete its upgrade now;
    * ``max_rounds``: bound on delivery rounds in ``run()`` and deadlines in
      ``advance()`` (default 100,000); past it, RuntimeError.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        clock: VirtualClock | None = None,
        runner: Runner | None = None,
        raise_errors: bool = True,
        chunk: int | None = None,
        client_options: dict[str, Any] | None = None,
        server_options: dict[str, Any] | None = None,
        connect: bool = True,
        max_rounds: int = MAX_ROUNDS,
    ) -> None:
        self.max_rounds = max_rounds
        self.clock = clock if clock is not None else VirtualClock()
        self.server = PairServer(registry)
        self.runner: Runner = runner if runner is not None else drive
        self.raise_errors = raise_errors
        self.chunk = chunk
        self.client_options = dict(client_options or {})
        self.server_options = dict(server_options or {})
        self.clients: list[PairClient] = []
        self._wires: dict[PairClient, _Wire] = {}
        if connect:
            self.connect()

    @property
    def client(self) -> PairClient:
        """The first client (created by ``Pair()`` or the first ``connect()``)."""
        if not self.clients:
            raise LookupError("the pair has no client yet: call connect()")
        return self.clients[0]

    # ------------------------------------------------------------ set-up
    def connect(self, *, headers: tuple[tuple[str, str], ...] = ()) -> PairClient:
        """Open one more client connection, complete its upgrade, return it."""
        conn_id = len(self.clients) + 1
        registry = self.server.router.registry
        # engines that own deadlines start them at ``now``: the virtual one
        now = {"now": self.clock.now} if hasattr(ClientConnection, "get_timer") else {}
        engine = ClientConnection(
            DEFAULT_HOST,
            headers=headers,
            registry=registry,
            clock=self.clock.wall_ns,
            **{**now, **self.client_options},
        )
        client = PairClient(self, conn_id, engine)
        client.server_conn = ServerConnection(
            registry=registry, clock=self.clock.wall_ns, **{**now, **self.server_options}
        )
        self.clients.append(client)
        self._wires[client] = _Wire()
        self.server.sent[client] = []
        self.run()
        if engine.status is not Status.RUNNING:
            raise AssertionError(f"in-memory upgrade failed: {client.events!r}")
        return client

    # ------------------------------------------------------------- driving
    def run(self) -> int:
        """Deliver every byte both ways and run handlers until quiet; return the rounds used.

        RuntimeError when it does not settle within ``max_rounds`` rounds
        (handlers that answer each other forever).
        """
        rounds = 0
        while self._round():
            rounds += 1
            if rounds >= self.max_rounds:
                raise RuntimeError(
                    f"the pair did not settle in {self.max_rounds} rounds: "
                    "handlers keep sending to each other"
                )
        return rounds

    def advance(self, seconds: float) -> None:
        """Move the virtual clock by ``seconds``, firing each deadline at its own time.

        Every connection whose ``get_timer()`` falls inside the interval gets
        ``handle_timer(deadline)`` in deadline order, with ``run()`` after each,
        so a ping sent at one deadline can be answered before the next.
        """
        if seconds < 0:
            raise ValueError(f"a clock does not go back: advance({seconds})")
        target = self.clock.now + seconds
        self.run()
        for _ in range(self.max_rounds):
            due = [
                when
                for conn in self._engines()
                if (when := next_deadline(conn)) is not None and when <= target
            ]
            if not due:
                break
            self.clock.now = max(self.clock.now, min(due))
            for conn in self._engines():
                fire_timer(conn, self.clock.now)
            self.run()
        else:
            raise RuntimeError("a deadline keeps falling due without moving: engine timer bug")
        self.clock.now = target
        self.run()

    def stall(self, client: PairClient, *, to_client: bool = True, to_server: bool = True) -> None:
        """Stop delivering bytes (and the FIN) on ``client``'s connection in the given
        directions: a peer that stopped reading, or a network that went quiet. Bytes stay
        queued until :meth:`unstall`."""
        wire = self._wires[client]
        wire.hold_s2c = wire.hold_s2c or to_client
        wire.hold_c2s = wire.hold_c2s or to_server

    def unstall(self, client: PairClient) -> None:
        """Deliver again in both directions (what was held goes at the next ``run()``)."""
        wire = self._wires[client]
        wire.hold_s2c = wire.hold_c2s = False

    def close_all(self) -> None:
        """Close every running client (code 1000) and run until every connection ended."""
        for client in self.clients:
            if client.conn.status is Status.RUNNING:
                client.close()
        self.run()

    # ---------------------------------------------------------- internals
    def _engines(self) -> list[BaseConnection]:
        out: list[BaseConnection] = []
        for client in self.clients:
            out.append(client.conn)
            assert client.server_conn is not None
            out.append(client.server_conn)
        return out

    def _round(self) -> bool:
        progressed = False
        for client in list(self.clients):
            wire = self._wires[client]
            server_conn = client.server_conn
            assert server_conn is not None
            progressed = self._drain(client, is_client=True) or progressed
            progressed = self._drain(client, is_client=False) or progressed
            if wire.c2s and not wire.server_fin:
                if not wire.hold_c2s:
                    self._feed(server_conn, self._take(wire.c2s))
                    self._handle(client, is_client=False)
                    progressed = True
            elif wire.c2s:
                wire.c2s.clear()  # the server's socket is gone: unread bytes die with it
            elif wire.client_fin and not wire.hold_c2s and not wire.eof_to_server:
                wire.eof_to_server = True
                self._feed(server_conn, None)
                self._handle(client, is_client=False)
                progressed = True
            if wire.s2c and not wire.client_fin:
                if not wire.hold_s2c:
                    self._feed(client.conn, self._take(wire.s2c))
                    self._handle(client, is_client=True)
                    progressed = True
            elif wire.s2c:
                wire.s2c.clear()
            elif wire.server_fin and not wire.hold_s2c and not wire.eof_to_client:
                wire.eof_to_client = True
                self._feed(client.conn, None)
                self._handle(client, is_client=True)
                progressed = True
        return progressed

    def _take(self, buf: bytearray) -> bytes:
        n = len(buf) if self.chunk is None else self.chunk
        data = bytes(buf[:n])
        del buf[:n]
        return data

    def _feed(self, conn: BaseConnection, data: bytes | None) -> None:
        """``receive_data`` (or ``receive_eof`` for None), at the virtual ``now`` when the
        engine takes time as an argument."""
        timed = takes(type(conn).receive_data, "now")
        kwargs = {"now": self.clock.now} if timed else {}
        engine: Any = conn  # the keyword exists only on engines that own deadlines
        if data is None:
            engine.receive_eof(**kwargs)
        else:
            engine.receive_data(data, **kwargs)

    def _handle(self, client: PairClient, *, is_client: bool) -> None:
        """Handle the events, let the engine apply a deferred fault, handle what that added."""
        conn = client.conn if is_client else client.server_conn
        assert conn is not None
        handle = self._client_events if is_client else self._server_events
        handle(client)
        apply_pending: Callable[[], None] | None = getattr(conn, "apply_pending", None)
        if apply_pending is not None:
            apply_pending()
        if conn.has_events():
            handle(client)

    def _drain(self, client: PairClient, *, is_client: bool) -> bool:
        """Move an engine's output onto the wire; end its transport when the engine says so."""
        wire = self._wires[client]
        conn = client.conn if is_client else client.server_conn
        assert conn is not None
        buf = wire.c2s if is_client else wire.s2c
        fin = wire.client_fin if is_client else wire.server_fin
        out = conn.data_to_send()
        if conn.has_events():  # an engine may finish a deferred fault while writing
            self._handle(client, is_client=is_client)
        if fin:
            return False  # nothing may be written after the transport closed
        if out:
            buf += out
        abort: Callable[[], bool] | None = getattr(conn, "should_abort_transport", None)
        if conn.should_close_transport() or (abort is not None and abort()):
            if is_client:
                wire.client_fin = True
            else:
                wire.server_fin = True
            return True
        return bool(out)

    def _server_events(self, client: PairClient) -> None:
        conn = client.server_conn
        assert conn is not None
        server = self.server
        log = server.sent[client]
        for event in conn.events():
            if isinstance(event, ev.MessageReceived | ev.SyncRequestReceived):
                message = event.message
                server.router.freeze()  # as a real server does at start: chains built once
                chain = server.router.resolve(message.kind)
                if chain is None:
                    server.errors.append(UnknownKind(message.kind))
                    continue
                sender = PairSender(conn, log, client.conn_id, message.uuid)
                self._call(chain, sender, message, server.errors)
            elif isinstance(event, ev.BroadcastRequested):
                self._fan_out(list(self.clients), event.message)
            elif isinstance(event, ev.PublishRequested):
                self._fan_out(server.topics.subscribers(event.topic), event.message)
            elif isinstance(event, ev.SubscribeRequested):
                server.topics.subscribe(event.topic, client)
            elif isinstance(event, ev.UnsubscribeRequested):
                server.topics.unsubscribe(event.topic, client)
            elif isinstance(event, ev.ErrorOccurred):
                server.errors.append(event.error)
            elif isinstance(event, ev.ConnectionClosed):
                server.topics.unsubscribe_all(client)

    def _fan_out(self, targets: list[PairClient], message: Message[Any]) -> None:
        frame = prepare(message, creation_ns=self.clock.wall_ns())
        for target in targets:
            conn = target.server_conn
            if conn is not None and conn.status is Status.RUNNING:
                conn.send_prepared(frame)
                self.server.sent[target].append(message)

    def _client_events(self, client: PairClient) -> None:
        for event in client.conn.events():
            client.events.append(event)
            if isinstance(event, ev.MessageReceived):
                client.inbox.append(event.message)
                client.received.append(event.message)
                client.router.freeze()
                chain = client.router.resolve(event.message.kind)
                if chain is not None:
                    sender = PairSender(client.conn, client.handler_sent, client.conn_id)
                    self._call(chain, sender, event.message, client.errors)
            elif isinstance(event, ev.SyncReplyReceived):
                message = event.message
                client.inbox.append(message)
                if message.uuid in client.pending:
                    client.pending.discard(message.uuid)
                    client.replies[message.uuid] = message
                else:
                    client.errors.append(
                        UnexpectedReply(f"sync reply {message.uuid!r} matches no request")
                    )
            elif isinstance(event, ev.ErrorOccurred):
                client.errors.append(event.error)
            elif isinstance(event, ev.ConnectionClosed):
                client.closed = event

    def _call(
        self,
        chain: Handler,
        sender: PairSender,
        message: Message[Any],
        errors: list[GoomerangError],
    ) -> None:
        try:
            result = chain(sender, message)
            if result is not None and hasattr(result, "__await__"):
                self.runner(result)
        except (NotRunning, Closing) as exc:
            # The connection closed under the handler (e.g. the peer's Close came in
            # the same read): the real endpoints report this to on_error, too.
            errors.append(exc)
        except Exception as exc:
            if self.raise_errors:
                raise
            err = HandlerError(f"handler for {message.kind} raised {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            errors.append(err)


__all__ = ["Pair", "fire_timer", "next_deadline"]
