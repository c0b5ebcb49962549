"""The asyncio (and uvloop) runtime: a server, a client and the connection driver they share."""

from .client import Client
from .server import BroadcastResult, Server

__all__ = ["BroadcastResult", "Client", "Server"]
