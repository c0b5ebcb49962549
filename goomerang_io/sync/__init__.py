"""The blocking client: the asyncio client's API without ``await``, over a socket and ``select``."""

from .client import Client

__all__ = ["Client"]
