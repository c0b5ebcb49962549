"""goomerang_io: IO adapters (asyncio/uvloop client and server, blocking client, workers)."""

from goomerang_proto import Message
from goomerang_proto.errors import (
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
    OutboxFull,
    PermissionDenied,
    ProtocolError,
    RemoteError,
    RemoteProtocolError,
    RouterFrozen,
    SyncTimeout,
    TLSError,
    TooManyPending,
    UnexpectedReply,
    UnexpectedText,
    UnknownKind,
)
from goomerang_proto.extensions import ExtensionNotNegotiated
from goomerang_proto.frames import FrameError

from .asyncio.client import Client
from .asyncio.server import BroadcastResult, Server
from .backplane.base import BackplaneError, BackplaneProtocolError, BackplaneUnavailable
from .http import ANONYMOUS, AuthRejected, Rejection, Request, Response
from .options import ClientOptions, ServerOptions
from .sender import Sender

__all__ = [
    "ANONYMOUS",
    "AlreadyRunning",
    "AuthRejected",
    "BackplaneError",
    "BackplaneProtocolError",
    "BackplaneUnavailable",
    "BroadcastResult",
    "Client",
    "ClientOptions",
    "Closed",
    "Closing",
    "ConnectionLost",
    "ExtensionNotNegotiated",
    "FrameError",
    "GoomerangError",
    "HandlerError",
    "HandshakeError",
    "IllegalTransition",
    "LocalProtocolError",
    "MalformedFrame",
    "Message",
    "MessageTooLarge",
    "NotRunning",
    "OutboxFull",
    "PermissionDenied",
    "ProtocolError",
    "Rejection",
    "RemoteError",
    "RemoteProtocolError",
    "Request",
    "Response",
    "RouterFrozen",
    "Sender",
    "Server",
    "ServerOptions",
    "SyncTimeout",
    "TLSError",
    "TooManyPending",
    "UnexpectedReply",
    "UnexpectedText",
    "UnknownKind",
]
