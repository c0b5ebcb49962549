"""goomerang_proto: the sans-IO goomerang engine (bytes in, events and bytes out).

No module here performs IO, reads the clock or sleeps; the import-linter
contracts in ``pyproject.toml`` keep it that way.
"""

from . import events, frames
from .client_connection import ClientConnection, new_uuid
from .codec import pack, unpack
from .connection import DEFAULT_MAX_MESSAGE_SIZE, BaseConnection
from .errors import (
    AlreadyRunning,
    Closed,
    Closing,
    ConnectionLost,
    GoomerangError,
    HandlerError,
    HandshakeError,
    IllegalTransition,
    LocalProtocolError,
    MalformedFrame,
    MessageTooLarge,
    NotRunning,
    ProtocolError,
    RemoteProtocolError,
    RouterFrozen,
    SyncTimeout,
    TooManyPending,
    UnexpectedReply,
    UnexpectedText,
    UnknownKind,
)
from .message import Message
from .registry import Registry, kind_of
from .router import Handler, Middleware, Router
from .server_connection import ServerConnection, prepare
from .status import Lifecycle, Side, Status
from .topics import Groups, Topics

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "AlreadyRunning",
    "BaseConnection",
    "ClientConnection",
    "Closed",
    "Closing",
    "ConnectionLost",
    "GoomerangError",
    "Groups",
    "Handler",
    "HandlerError",
    "HandshakeError",
    "IllegalTransition",
    "Lifecycle",
    "LocalProtocolError",
    "MalformedFrame",
    "Message",
    "MessageTooLarge",
    "Middleware",
    "NotRunning",
    "ProtocolError",
    "Registry",
    "RemoteProtocolError",
    "Router",
    "RouterFrozen",
    "ServerConnection",
    "Side",
    "Status",
    "SyncTimeout",
    "TooManyPending",
    "Topics",
    "UnexpectedReply",
    "UnexpectedText",
    "UnknownKind",
    "events",
    "frames",
    "kind_of",
    "new_uuid",
    "pack",
    "prepare",
    "unpack",
]
