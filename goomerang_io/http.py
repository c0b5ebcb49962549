"""Plain HTTP on the server's port: custom routes and the upgrade request seen by auth."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request: a custom route's input, or the upgrade given to ``authenticate``."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    peer: tuple[str, int] | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        """First value of header ``name`` (case-insensitive)."""
        lname = name.lower()
        for k, v in self.headers:
            if k == lname:
                return v
        return default

    @property
    def query_params(self) -> dict[str, list[str]]:
        """The query string parsed into lists of values."""
        return parse_qs(self.query)


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP response from a custom route."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = field(default=())
    content_type: str = "text/plain; charset=utf-8"

    def all_headers(self) -> list[tuple[str, str]]:
        """Headers including Content-Type (unless already given)."""
        hdrs = list(self.headers)
        if not any(k.lower() == "content-type" for k, _ in hdrs):
            hdrs.append(("Content-Type", self.content_type))
        return hdrs


RouteResult = Response | bytes | str | tuple[int, bytes]
RouteHandler = Callable[[Request], RouteResult | Awaitable[RouteResult]]


def to_response(result: RouteResult) -> Response:
    """Normalise what a route handler returned into a Response."""
    if isinstance(result, Response):
        return result
    if isinstance(result, bytes):
        return Response(200, result)
    if isinstance(result, str):
        return Response(200, result.encode("utf-8"))
    if isinstance(result, tuple) and len(result) == 2:
        status, body = result
        return Response(int(status), body if isinstance(body, bytes) else str(body).encode())
    raise TypeError(f"route handler returned {type(result).__name__}; expected Response or bytes")


@dataclass(frozen=True, slots=True)
class Rejection:
    """What ``authenticate`` returns (or raises as AuthRejected) to refuse an upgrade."""

    status: int = 403
    body: bytes = b"forbidden\n"


class AuthRejected(Exception):
    """Raise from ``authenticate`` to refuse an upgrade with an HTTP status (401/403)."""

    def __init__(self, status: int = 403, message: str = "forbidden") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Anonymous:
    """The identity of a peer admitted without credentials (see ``ANONYMOUS``)."""

    _instance: _Anonymous | None = None

    def __new__(cls) -> _Anonymous:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ANONYMOUS"

    def __reduce__(self) -> str:
        return "ANONYMOUS"


ANONYMOUS: Final = _Anonymous()
"""Return this from ``authenticate`` (or a route's ``authorize``) to admit a peer
without credentials explicitly; ``sender.identity`` is then ``ANONYMOUS``.
Returning ``None`` refuses with 401, so a lookup that misses (``TOKENS.get(token)``)
never lets a peer in."""


def guard_route(handler: RouteHandler, authorize: Callable[[Request], Any]) -> RouteHandler:
    """``handler`` behind ``authorize``, with the rules of ``authenticate``.

    ``authorize(request)`` (plain or async) returns an identity to serve the
    request, a :class:`Rejection` (or raises :class:`AuthRejected`) to answer
    with its status, and None to answer 401.
    """

    async def guarded(request: Request) -> RouteResult:
        try:
            verdict = authorize(request)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except AuthRejected as exc:
            return Response(exc.status, (exc.message + "\n").encode())
        if isinstance(verdict, Rejection):
            return Response(verdict.status, verdict.body)
        if verdict is None:
            return Response(401, b"authentication required\n")
        result = handler(request)
        if inspect.isawaitable(result):
            result = await result
        return result

    return guarded
