"""What the parts of an asyncio server (fan-out, subscriptions, commands) read from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from goomerang_proto import Message, Status

from ..hooks import Hooks
from ..options import ServerOptions
from ..sender import Sender
from .server_protocol import ServerProtocol


class ServerView(Protocol):
    """The public state of a ``Server`` that its parts share (``Server`` provides it).

    The parts read it through this protocol, never the server's module: no
    import cycle. ``metrics`` and the ``can_*`` rules may be replaced after
    construction, so they are read at each use.
    """

    options: ServerOptions
    metrics: Any
    hooks: Hooks
    can_subscribe: Callable[[Sender, str], bool] | None
    can_publish: Callable[[Sender, str, Message[Any]], bool] | None
    can_broadcast: Callable[[Sender, Message[Any]], bool] | None
    in_batch: bool
    dirty: list[ServerProtocol]

    @property
    def status(self) -> Status: ...
    def report_error(self, exc: BaseException) -> None: ...
    def is_closed(self) -> bool: ...
    def flush_dirty(self) -> None: ...
