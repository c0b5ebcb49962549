"""goomerang_io: IO adapters (asyncio/uvloop client and server, blocking client, workers)."""

from goomerang_proto import Message

from .asyncio.client import Client
from .asyncio.server import BroadcastResult, Server
from .http import AuthRejected, Rejection, Request, Response
from .options import ClientOptions, ServerOptions
from .sender import Sender

__all__ = [
    "AuthRejected",
    "BroadcastResult",
    "Client",
    "ClientOptions",
    "Message",
    "Rejection",
    "Request",
    "Response",
    "Sender",
    "Server",
    "ServerOptions",
]
