"""Goomerang protocol extensions, negotiated on the upgrade (outside goomerang v0.3.0).

A client lists the extensions it speaks in one request header,
``Goomerang-Extensions: queue-groups`` (comma-separated tokens, like
``Sec-WebSocket-Extensions``, RFC 6455 section 9.1); a server that speaks
some of them answers the same header in its 101 response with those it
accepts. A peer that does not know the header (the Go goomerang v0.3.0)
ignores it and answers none, so neither side uses an extension the other
would misread. See docs/PROTOCOL-extensions.md.

* ``queue-groups``: ``SubscribeCmd.group`` / ``UnsubscribeCmd.group``
  (field 100). Without it, a group subscribe must not be sent: the Go
  server ignores unknown fields, so a group member would silently become a
  plain subscriber and do duplicate work.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import GoomerangError

__all__ = [
    "ERROR_REPLIES",
    "EXTENSIONS_HEADER",
    "QUEUE_GROUPS",
    "SUPPORTED",
    "ExtensionNotNegotiated",
    "answer",
    "offer",
    "parse",
]

#: The header's name (sent as written; HTTP header names are case-insensitive).
EXTENSIONS_HEADER = "Goomerang-Extensions"
#: Queue groups on subscribe/unsubscribe.
QUEUE_GROUPS = "queue-groups"
#: Error replies: the server answers a failed request, or refuses a command, with an error message.
ERROR_REPLIES = "error-replies"
#: Every extension this implementation speaks (client and server).
SUPPORTED = frozenset({QUEUE_GROUPS, ERROR_REPLIES})


class ExtensionNotNegotiated(GoomerangError):
    """The peer did not accept the extension a call needs (e.g. a Go goomerang server)."""


def parse(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The extension tokens in every ``Goomerang-Extensions`` header of ``headers``.

    ``headers`` are ``(name, value)`` pairs, names in any case. Tokens are
    lowercased and stripped; empty ones are ignored.
    """
    name = EXTENSIONS_HEADER.lower()
    found: set[str] = set()
    for key, value in headers:
        if key.lower() == name:
            found.update(t.strip().lower() for t in value.split(",") if t.strip())
    return frozenset(found)


def offer(extensions: Iterable[str] = SUPPORTED) -> tuple[str, str]:
    """The request header a client sends to offer ``extensions``."""
    return (EXTENSIONS_HEADER, ", ".join(sorted(extensions)))


def answer(
    request_headers: Iterable[tuple[str, str]], supported: Iterable[str] = SUPPORTED
) -> list[tuple[str, str]]:
    """The 101 response headers of a server that speaks ``supported``.

    Empty when the request offered none of them (a Go client, a browser).
    """
    accepted = parse(request_headers) & frozenset(supported)
    return [(EXTENSIONS_HEADER, ", ".join(sorted(accepted)))] if accepted else []
