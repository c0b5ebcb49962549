"""The pair's ends: the server endpoint, its clients, and the sender handlers get."""

from __future__ import annotations

import inspect
from typing import Any, Protocol

from google.protobuf.message import Message as ProtoMessage

from .. import events as ev
from ..client_connection import ClientConnection
from ..connection import BaseConnection
from ..errors import GoomerangError
from ..message import Message
from ..registry import Registry
from ..router import Handler, Middleware, Router
from ..server_connection import ServerConnection
from ..status import Status
from ..topics import Topics
from .runner import Done


class Runs(Protocol):
    """What a client needs of its pair: ``run()`` (deliver and handle until quiet)."""

    def run(self) -> int: ...


TAKES_CACHE: dict[tuple[Any, str], bool] = {}


def takes(fn: Any, name: str) -> bool:
    """Whether engine method ``fn`` has parameter ``name`` (the engine API grows; cached)."""
    key = (fn, name)
    known = TAKES_CACHE.get(key)
    if known is None:
        known = TAKES_CACHE[key] = name in inspect.signature(fn).parameters
    return known


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
        uuid = self.uuid
        conn: Any = self._conn
        # a reply counts as output the peer caused (flow control), where the engine has that
        extra = {"in_response": True} if takes(type(conn).send, "in_response") else {}
        size: int = conn.send(message, uuid=uuid, is_sync=bool(uuid), **extra)
        # what went on the wire: the handler's message plus the reply's uuid and flag
        sent = Message(message.payload, message.headers, kind=message.kind, uuid=uuid)
        sent.is_sync = bool(uuid)
        sent.payload_size = size
        self._log.append(sent)
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

    def __init__(self, pair: Runs, conn_id: int, conn: ClientConnection) -> None:
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


__all__ = ["PairClient", "PairSender", "PairServer"]
