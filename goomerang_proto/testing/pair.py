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

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message as ProtoMessage

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
from ..router import Handler, Middleware, Router
from ..server_connection import ServerConnection, prepare
from ..status import Status
from ..topics import Topics
from .clock import VirtualClock

T = TypeVar("T")
Runner = Callable[[Awaitable[Any]], Any]

DEFAULT_HOST = "goomerang.test:80"
MAX_ROUNDS = 100_000


class Done(Generic[T]):
    """An awaitable whose value is known: what ``sender.send`` returns (await it or not)."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        return self.value
        yield  # pragma: no cover - makes this a generator


def drive(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion without an event loop; return its result.

    Works for coroutines that await other coroutines, ``sender.send`` and
    ``asyncio.sleep(0)``-style bare yields. RuntimeError when it waits on a
    future (real IO, timers): give the Pair a real ``runner`` for those.
    """
    it = awaitable.__await__()
    value: Any = None
    while True:
        try:
            yielded = it.send(value)
        except StopIteration as stop:
            result: T = stop.value
            return result
        if yielded is not None:
            it.close()
            raise RuntimeError(
                f"handler awaited {yielded!r}, which needs an event loop: "
                "build the Pair with runner=asyncio.run (or another runner)"
            )
        value = None


class PairSender:
    """The ``sender`` a handler gets: replies on the connection the message came from.

    Same surface as ``goomerang_io.Sender``: ``send(message)`` (returns an
    awaitable of the payload size; the write happens at the call), ``uuid``
    (set while answering a sync request), ``identity``, ``peer``, ``conn_id``,
    ``close(code)``.
    """

    __slots__ = ("_conn", "_log", "conn_id", "identity", "peer", "uuid")

    def __init__(
        self,
        conn: BaseConnection,
        log: list[Message[Any]],
        conn_id: int,
        uuid: str = "",
    ) -> None:
        self._conn = conn
        self._log = log
        self.conn_id = conn_id
        self.uuid = uuid
        self.identity: Any = None
        self.peer: tuple[str, int] | None = ("127.0.0.1", 40000 + conn_id)

    def send(self, message: Message[Any]) -> Done[int]:
        """Queue ``message`` (the reply to a sync request when ``uuid`` is set)."""
        size = self._conn.send(message, uuid=self.uuid, is_sync=bool(self.uuid))
        self._log.append(message)
        return Done(size)

    def close(self, code: int = 1000) -> Done[None]:
        """Start the close handshake on this connection."""
        self._conn.close(code)
        return Done(None)

    def __repr__(self) -> str:
        return f"PairSender(conn={self.conn_id}, uuid={self.uuid!r})"


class _Endpoint:
    """What the server end and every client share: a router and an error list."""

    def __init__(self, registry: Registry | None) -> None:
        self.router = Router(registry if registry is not None else Registry())
        self.errors: list[GoomerangError] = []
        """Errors the real endpoint would give its ``on_error`` hooks, in order."""

    def handle(self, cls: type[ProtoMessage], handler: Handler) -> None:
        """Route messages of ``cls`` to ``handler(sender, message)``."""
        self.router.handle(cls, handler)

    def middleware(self, middleware: Middleware) -> None:
        """Add ``middleware(next_handler) -> handler``; the first added runs outermost."""
        self.router.middleware(middleware)

    def register_message(self, cls: type[ProtoMessage]) -> None:
        """Make ``cls`` decodable without a handler (for broadcast, publish, replies)."""
        self.router.register_message(cls)


class PairServer(_Endpoint):
    """The server end: handlers, middlewares, client broadcast and publish, topics.

    ``sent[client]`` lists, in order, every message this end queued for that
    client (handler replies and fan-out), for comparing with ``client.inbox``.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        super().__init__(registry)
        self.topics: Topics[PairClient] = Topics()
        self.sent: dict[PairClient, list[Message[Any]]] = {}


class PairClient(_Endpoint):
    """One client connection of the pair, with the engine-level client API.

    What arrived: ``inbox`` (every message in arrival order, sync replies
    included), ``received`` (messages that were not sync replies), ``replies``
    (sync replies by uuid), ``errors``, ``closed`` (the ConnectionClosed event,
    once closed). ``events`` keeps every engine event.
    """

    def __init__(self, pair: Pair, conn_id: int, conn: ClientConnection) -> None:
        super().__init__(conn.registry)
        self.pair = pair
        self.conn_id = conn_id
        self.conn = conn
        self.server_conn: ServerConnection | None = None
        self.inbox: list[Message[Any]] = []
        self.received: list[Message[Any]] = []
        self.replies: dict[str, Message[Any]] = {}
        self.pending: set[str] = set()
        self.events: list[ev.Event] = []
        self.closed: ev.ConnectionClosed | None = None
        self.handler_sent: list[Message[Any]] = []

    @property
    def status(self) -> Status:
        """The client engine's status."""
        return self.conn.status

    def send(self, message: Message[Any]) -> int:
        """Queue an async message; return its payload size. NotRunning/Closing when closed."""
        return self.conn.send(message)

    def send_sync(self, message: Message[Any], uuid: str | None = None) -> str:
        """Queue a sync request; return its uuid (the reply lands in ``replies[uuid]``)."""
        uid = self.conn.send_sync(message, uuid)
        self.pending.add(uid)
        return uid

    def request(self, message: Message[Any]) -> Message[Any]:
        """Send a sync request, run the pair, return the reply. AssertionError without one."""
        uid = self.send_sync(message)
        self.pair.run()
        reply = self.replies.get(uid)
        if reply is None:
            raise AssertionError(f"no reply to sync request {uid} ({message!r})")
        return reply

    def broadcast(self, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to every client (this one included)."""
        return self.conn.broadcast(message)

    def publish(self, topic: str, message: Message[Any]) -> int:
        """Ask the server to send ``message`` to the subscribers of ``topic``."""
        return self.conn.publish(topic, message)

    def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic``."""
        self.conn.subscribe(topic)

    def unsubscribe(self, topic: str) -> None:
        """Unsubscribe from ``topic``."""
        self.conn.unsubscribe(topic)

    def ping(self, payload: bytes = b"ping") -> None:
        """Send a WebSocket Ping (at most 125 bytes)."""
        self.conn.ping(payload)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake (``pair.run()`` completes it)."""
        self.conn.close(code, reason)

    def __repr__(self) -> str:
        return f"PairClient({self.conn_id}, {self.conn.status.name})"


class _Wire:
    """The two byte streams of one connection and whether each writer ended it."""

    __slots__ = ("c2s", "client_fin", "s2c", "server_fin")

    def __init__(self) -> None:
        self.c2s = bytearray()
        self.s2c = bytearray()
        self.client_fin = False
        self.server_fin = False


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
    chunk=None, client_options=None, server_options=None, connect=True)``:

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
    * ``connect``: create ``pair.client`` and complete its upgrade now.
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
    ) -> None:
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
        engine = ClientConnection(
            DEFAULT_HOST,
            headers=headers,
            registry=registry,
            clock=self.clock.wall_ns,
            **self.client_options,
        )
        client = PairClient(self, conn_id, engine)
        client.server_conn = ServerConnection(
            registry=registry, clock=self.clock.wall_ns, **self.server_options
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

        RuntimeError when it does not settle within 100,000 rounds (handlers
        that answer each other forever).
        """
        rounds = 0
        while self._round():
            rounds += 1
            if rounds >= MAX_ROUNDS:
                raise RuntimeError("the pair did not settle: handlers keep sending to each other")
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
        for _ in range(MAX_ROUNDS):
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
            progressed = self._drain(client.conn, wire.c2s, wire, is_client=True) or progressed
            progressed = self._drain(server_conn, wire.s2c, wire, is_client=False) or progressed
            if wire.c2s and not wire.server_fin:
                server_conn.receive_data(self._take(wire.c2s))
                self._server_events(client)
                progressed = True
            elif wire.c2s:
                wire.c2s.clear()
            elif wire.client_fin and server_conn.status is not Status.CLOSED:
                server_conn.receive_eof()
                self._server_events(client)
                progressed = True
            if wire.s2c and not wire.client_fin:
                client.conn.receive_data(self._take(wire.s2c))
                self._client_events(client)
                progressed = True
            elif wire.s2c:
                wire.s2c.clear()
            elif wire.server_fin and not client.conn.should_close_transport():
                client.conn.receive_eof()
                self._client_events(client)
                progressed = True
        return progressed

    def _take(self, buf: bytearray) -> bytes:
        n = len(buf) if self.chunk is None else self.chunk
        data = bytes(buf[:n])
        del buf[:n]
        return data

    def _drain(self, conn: BaseConnection, buf: bytearray, wire: _Wire, *, is_client: bool) -> bool:
        """Move ``conn``'s output onto the wire; end its transport when the engine says so."""
        fin = wire.client_fin if is_client else wire.server_fin
        if fin:
            conn.data_to_send()  # nothing may be written after the transport closed
            return False
        out = conn.data_to_send()
        if out:
            buf += out
        if conn.should_close_transport():
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


__all__ = [
    "Done",
    "Pair",
    "PairClient",
    "PairSender",
    "PairServer",
    "Runner",
    "drive",
    "fire_timer",
    "next_deadline",
]
