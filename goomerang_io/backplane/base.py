"""The backplane interface: how one node's broadcast and publish reach the others.

A *node* is one process that owns client connections (a worker of a
multi-process server, or one server process among several sharing Redis).
The server delivers every broadcast and publish to its own clients first,
then hands the already packed frame to its backplane, which carries it to
every *other* node. A node never receives its own messages back: each
envelope carries the sender's ``origin`` (node id) and echoes are dropped.

Delivery guarantee, honestly: **at most once across nodes**. A message sent
while the backplane is disconnected, or while a node is reconnecting, is
lost for the other nodes (the local clients still get it); nothing is
queued or replayed. Within one healthy connection, messages from one node
arrive at another node in the order they were sent and exactly once.

The wire is protobuf (``goomerang.backplane.Envelope``), never pickle.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from goomerang_proto.pb import goomerang_backplane_pb2 as pb

__all__ = [
    "Backplane",
    "BackplaneError",
    "BackplaneMessage",
    "BackplaneProtocolError",
    "BackplaneUnavailable",
    "DeliverCallback",
    "ErrorCallback",
    "decode_envelope",
    "describe",
    "encode_envelope",
    "new_node_id",
    "next_backoff",
]


class BackplaneError(Exception):
    """Base class of the backplane errors (reported through ``on_error``)."""


class BackplaneUnavailable(BackplaneError):
    """The backplane is disconnected: a message did not reach the other nodes."""


class BackplaneProtocolError(BackplaneError):
    """A peer sent bytes that are not a valid backplane envelope stream."""


@dataclass(frozen=True, slots=True)
class BackplaneMessage:
    """One broadcast or publish received from another node.

    ``topic`` is ``""`` for a broadcast. ``frame`` is the packed goomerang
    Frame (server-to-client envelope), ready to be framed and written to
    the node's own clients. ``origin`` is the sender's node id. ``groups``:
    the queue groups of ``topic`` for which this node must write the message
    to one local member each (chosen by a backplane that routes groups);
    ``groups_only``: the node's plain subscribers must not get it.
    """

    topic: str
    kind: str
    frame: bytes
    origin: str
    groups: tuple[str, ...] = ()
    groups_only: bool = False

    @property
    def is_broadcast(self) -> bool:
        """True for a broadcast, False for a publish to ``topic``."""
        return not self.topic


DeliverCallback = Callable[[BackplaneMessage], None]
ErrorCallback = Callable[[Exception], None]


def describe(exc: BaseException) -> str:
    """``"TypeName: message"`` for an error report."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def new_node_id() -> str:
    """A fresh random node id (hex, unique per process start)."""
    return os.urandom(8).hex()


def next_backoff(previous: float, base: float, cap: float) -> float:
    """The next reconnect delay: ``base`` first, doubling, never above ``cap``."""
    if previous <= 0:
        return min(base, cap)
    return min(previous * 2, cap)


def encode_envelope(
    op: pb.Envelope.Op, origin: str, topic: str = "", kind: str = "", frame: bytes = b""
) -> bytes:
    """Serialize one ``goomerang.backplane.Envelope``."""
    env = pb.Envelope(op=op, origin=origin, topic=topic, kind=kind, frame=frame)
    return env.SerializeToString()


def decode_envelope(data: bytes) -> pb.Envelope:
    """Parse one envelope; raise ``BackplaneProtocolError`` on bytes that are not one."""
    env = pb.Envelope()
    try:
        env.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError (and, rarely, others)
        raise BackplaneProtocolError(f"malformed backplane envelope: {exc}") from exc
    return env


_background: set[asyncio.Future[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


class Backplane(ABC):
    """Carries broadcast and publish between nodes. One instance per node.

    Lifecycle: ``await start(deliver, on_error)`` once on the node's event
    loop, then ``broadcast``/``publish``/``subscribe``/``unsubscribe`` from
    that loop, then ``await close()``. ``deliver`` is called on the loop for
    every message from another node, never for the node's own. Faults never
    raise out of the send methods: they are reported through ``on_error``
    (local delivery is the caller's job and continues), and the backplane
    reconnects by itself.
    """

    node_id: str
    #: Called with True/False on every change of ``healthy()`` (and once with
    #: the first connection attempt's outcome), on the node's loop. Set it
    #: before ``start``; e.g. ``lambda up: metrics.set_backplane_up(up)``.
    on_health_change: Callable[[bool], None] | None = None
    _health: bool | None = None

    #: True when the backplane chooses the one member of each queue group over
    #: every node (the node then leaves group choice to it while healthy);
    #: False: each node chooses among its own members (one per node).
    routes_groups: bool = False
    #: Called with the number of messages just dropped (outage, or a byte
    #: bound reached), on the node's loop; e.g. the server's metric
    #: ``goomerang_server_backplane_dropped_total``. Set it before ``start``.
    on_drop: Callable[[int], None] | None = None
    dropped: int = 0
    dropped_bytes: int = 0

    def _count_drop(self, messages: int, nbytes: int = 0) -> None:
        """Count ``messages`` (``nbytes`` in all) that did not reach the other nodes."""
        if messages <= 0:
            return
        self.dropped += messages
        self.dropped_bytes += nbytes
        hook = self.on_drop
        if hook is not None:
            try:
                hook(messages)
            except Exception:  # a hook must not break the backplane
                pass

    def broadcast_nowait(self, kind: str, frame: bytes) -> None:
        """Queue a broadcast without waiting (never blocks; drops past a byte bound).

        The default runs :meth:`broadcast` in a task; the built-in backplanes
        queue synchronously, so a fan-out costs no task.
        """
        _spawn(self.broadcast(kind, frame))

    def publish_nowait(self, topic: str, kind: str, frame: bytes) -> None:
        """Queue a publish without waiting; see :meth:`broadcast_nowait`."""
        _spawn(self.publish(topic, kind, frame))

    async def join(self, topic: str, group: str) -> None:
        """One more local member of queue ``group`` on ``topic`` (called per member).

        The default does nothing (a backplane that does not route groups).
        """

    async def leave(self, topic: str, group: str) -> None:
        """One local member of queue ``group`` on ``topic`` left (called per member)."""

    def _health_changed(self, up: bool) -> None:
        """Implementations call this on each transition; it calls the hook on changes only."""
        if up is self._health:
            return
        self._health = up
        hook = self.on_health_change
        if hook is not None:
            try:
                hook(up)
            except Exception:  # a hook must not break the backplane
                pass

    @abstractmethod
    async def start(self, deliver: DeliverCallback, on_error: ErrorCallback) -> None:
        """Connect (or begin connecting in the background) and start receiving."""

    @abstractmethod
    async def broadcast(self, kind: str, frame: bytes) -> None:
        """Send a broadcast to every other node (the caller delivers locally first)."""

    @abstractmethod
    async def publish(self, topic: str, kind: str, frame: bytes) -> None:
        """Send a publish to every other node that has local subscribers of ``topic``."""

    @abstractmethod
    async def subscribe(self, topic: str) -> None:
        """This node now has local subscribers of ``topic`` (called on the first one)."""

    @abstractmethod
    async def unsubscribe(self, topic: str) -> None:
        """This node has no local subscriber of ``topic`` left."""

    @abstractmethod
    async def wait_connected(self) -> None:
        """Return once the backplane is connected (at once if it is); wrap in a timeout."""

    @abstractmethod
    async def close(self) -> None:
        """Stop receiving and release the connection. Idempotent."""

    @abstractmethod
    def healthy(self) -> bool:
        """True while connected: messages now reach the other nodes."""

    @abstractmethod
    def status(self) -> dict[str, object]:
        """A snapshot for a status call or a metric (backend, connected, reconnects, ...)."""
