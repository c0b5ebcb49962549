"""The ``sender`` given to handlers: writes back on the connection the message came from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from goomerang_proto import Message

from .validate import check_message

if TYPE_CHECKING:
    from collections.abc import Awaitable


class _Writer(Protocol):
    identity: Any
    peer: tuple[str, int] | None
    conn_id: int

    def send_message(self, message: Message[Any], uuid: str) -> Awaitable[int]: ...

    def close(self, code: int = 1000) -> Any: ...


class Sender:
    """Handle on one connection, passed to every handler as its first argument.

    ``await sender.send(message)`` writes ``message`` on that connection and
    returns its payload size; in a handler of a sync request it is the reply
    (same uuid, ``is_sync``). The write happens when ``send`` is called; awaiting
    only waits for the write buffer to drain when it is above its high-water
    mark, so plain-function handlers may call ``sender.send(...)`` without await.
    """

    __slots__ = ("_conn", "uuid")

    def __init__(self, conn: _Writer, uuid: str = "") -> None:
        self._conn = conn
        self.uuid = uuid

    def send(self, message: Message[Any]) -> Awaitable[int]:
        """Send ``message`` to this connection's peer (the reply, for a sync request).

        Raises TypeError for anything but a ``Message`` with str headers (nothing is
        sent then), and MessageTooLarge above the endpoint's ``max_message_size``.
        """
        # No check before the send (the reply path is the hot path): what is not a
        # Message, a protobuf payload or str -> str headers fails in the engine's
        # encoder before anything is queued, and check_message then says what is wrong.
        try:
            return self._conn.send_message(message, self.uuid)
        except (AttributeError, TypeError):
            check_message(message)  # raises the TypeError that names the mistake
            raise

    @property
    def identity(self) -> Any:
        """What ``authenticate`` attached to the connection (None without auth)."""
        return self._conn.identity

    @property
    def peer(self) -> tuple[str, int] | None:
        """The peer's (host, port)."""
        return self._conn.peer

    @property
    def connection(self) -> Any:
        """The connection object this sender writes to: a handle for ``Server.subscribe``.

        On the server it is the asyncio protocol of the connection, which the compiled
        build (``GOOMERANG_COMPILE=1``) compiles: do not replace its methods.
        """
        return self._conn

    @property
    def conn_id(self) -> int:
        """A number identifying the connection within this process."""
        return self._conn.conn_id

    def subscribe(self, topic: str) -> None:
        """Put this connection in ``topic`` (server side: a room join decided by the
        server, with no authorization check; client side: ``client.subscribe``).

        Raises TypeError when ``topic`` is not a str.
        """
        self._topic_call("subscribe_topic", topic)

    def unsubscribe(self, topic: str) -> None:
        """Take this connection out of ``topic``."""
        self._topic_call("unsubscribe_topic", topic)

    def _topic_call(self, method: str, topic: str) -> None:
        if not isinstance(topic, str):
            raise TypeError(f"topic must be a str, got {type(topic).__name__}")
        call = getattr(self._conn, method, None)
        if call is None:
            raise TypeError(f"{type(self._conn).__name__} connections cannot join topics")
        call(topic)

    def close(self, code: int = 1000) -> Any:
        """Start closing this connection (server side: the client's; client side: our own)."""
        return self._conn.close(code)

    def __repr__(self) -> str:
        return f"Sender(conn={self.conn_id}, uuid={self.uuid!r})"
