"""Where a client connects: the WebSocket path, the Host header and the upgrade headers.

Shared by the asyncio and the blocking client.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable

from goomerang_proto import HandshakeError

from .validate import check_headers

HeaderPairs = tuple[tuple[str, str], ...]
HeadersArg = Iterable[tuple[str, str]] | Callable[[], Iterable[tuple[str, str]]]
"""``headers=``: (name, value) str pairs, or a callable returning them at each (re)connect."""


def ws_path(path: str | None, tls: ssl.SSLContext | None) -> str:
    """The upgrade path: ``path`` when given, else ``/wss`` with TLS and ``/ws`` without.

    Raises TypeError when ``tls`` is not an ``ssl.SSLContext`` (or None).
    """
    if tls is not None and not isinstance(tls, ssl.SSLContext):
        raise TypeError(f"tls must be an ssl.SSLContext or None, got {type(tls).__name__}")
    return path if path is not None else ("/wss" if tls is not None else "/ws")


def host_header(host: str, port: int) -> str:
    """The Host header of ``host:port`` (an IPv6 host in brackets, RFC 7230 section 5.4)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class UpgradeHeaders:
    """A client's extra upgrade headers: fixed pairs (``fixed``), or a callable's.

    Raises TypeError at construction for pairs that are not (str, str).
    """

    def __init__(self, headers: HeadersArg) -> None:
        self._fn = headers if callable(headers) else None
        self.fixed: HeaderPairs = () if callable(headers) else check_headers(headers)

    def __call__(self) -> HeaderPairs:
        """The headers of the next upgrade; HandshakeError when the callable fails."""
        fn = self._fn
        if fn is None:
            return self.fixed
        try:
            return check_headers(fn(), "headers()")
        except Exception as exc:
            raise HandshakeError(f"the headers callable failed: {exc!r}") from exc
