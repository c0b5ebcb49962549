"""What the parts of an asyncio server (fan-out, subscriptions, commands) read from it."""

from __future__ import annotations

from typing import Any, Protocol

from goomerang_proto import Status

from ..hooks import Hooks
from ..options import ServerOptions
from .server_protocol import ServerProtocol


class ServerView(Protocol):
    """The public state of a ``Server`` that its parts share (``Server`` provides it).

    The parts read it through this protocol, never the server's module: no
    import cycle. ``metrics`` may be replaced after construction, so it is
    read at each use.
    """

    options: ServerOptions
    metrics: Any
    hooks: Hooks
    in_batch: bool
    dirty: list[ServerProtocol]

    @property
    def status(self) -> Status: ...
    def report_error(self, exc: BaseException) -> None: ...
    def is_closed(self) -> bool: ...
    def flush_dirty(self) -> None: ...
