"""The trio runtime: ``Server`` and ``Client`` with the asyncio ones' API, on the same engine.

Needs the ``trio`` extra (``pip install 'goomerang[trio]'``).
"""

from .client import Client
from .server import Server

__all__ = ["Client", "Server"]
