"""Options of servers and clients, with their defaults (the README's limits table)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from goomerang_proto import DEFAULT_MAX_MESSAGE_SIZE


@dataclass
class ServerOptions:
    """Server settings. Every field is also a keyword argument of ``Server``."""

    max_concurrency: int = 10
    """Async handlers running at once per connection; <= 1 runs handlers in arrival order."""
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    """Largest accepted message; bigger ones close the connection with 1009."""
    handshake_timeout: float = 10.0
    """Seconds a new TCP connection has to complete its HTTP request (slowloris guard)."""
    close_timeout: float = 5.0
    """Seconds to wait for the peer's close answer before dropping the connection."""
    ping_interval: float | None = 20.0
    """Seconds between server pings (None: never ping, like the Go server)."""
    ping_timeout: float | None = 20.0
    """Seconds a peer has to answer a ping before it is closed."""
    max_connections: int = 10_000
    """Open connections per process; further upgrades get HTTP 503."""
    write_limit: int = 256 * 1024
    """Per-connection write buffer high-water mark; ``await sender.send`` waits above it."""
    slow_client_limit: int = 4 * 1024 * 1024
    """A fan-out target whose write buffer passes this many bytes is closed (0: never)."""
    slow_client_code: int = 1008
    """Close code for a too-slow fan-out target (1008 policy or 1013 try again later)."""
    max_request_size: int = 16 * 1024
    """Largest HTTP request line plus headers for the upgrade and custom routes."""
    max_queue: int = 1024
    """Messages waiting for a handler slot before the connection stops reading."""
    max_queue_bytes: int = 4 * 1024 * 1024
    """Payload bytes waiting for a handler slot before the connection stops reading
    (resumes below half of it and of ``max_queue``)."""
    max_subscriptions: int = 1000
    """Topics plus queue groups one connection may subscribe to; more are refused and reported."""
    shutdown_timeout: float = 10.0
    """Seconds ``shutdown`` waits for running handlers (reading stopped) before it cancels
    them and closes the connections."""
    compression: bool = False
    """permessage-deflate; not supported yet, must stay False."""
    client_subscribe: bool | tuple[str, ...] = True
    """Topics clients may subscribe to: True (any, as in Go), False (none; the server
    joins connections with ``sender.subscribe``) or fnmatch patterns (``("room.*",)``)."""
    client_publish: bool | tuple[str, ...] = True
    """Topics clients may publish to (PublishCmd): True (any, as in Go), False or patterns."""
    client_broadcast: bool = True
    """Whether clients may broadcast (BroadcastCmd) to every connection (True, as in Go)."""


@dataclass
class ClientOptions:
    """Client settings. Every field is also a keyword argument of ``Client``."""

    max_concurrency: int = 10
    """Async handlers running at once; <= 1 runs handlers in arrival order."""
    max_queue: int = 1024
    """Messages waiting for a handler slot before the client stops reading."""
    max_queue_bytes: int = 4 * 1024 * 1024
    """Payload bytes waiting for a handler slot before the client stops reading
    (resumes below half of it and of ``max_queue``)."""
    heartbeat_interval: float | None = 5.0
    """Seconds between client pings (the Go default is 5 s); None disables them."""
    ping_timeout: float | None = 20.0
    """Seconds the server has to answer a ping before the connection is dropped."""
    handshake_timeout: float = 10.0
    """Seconds to connect and complete the upgrade."""
    close_timeout: float = 5.0
    """Seconds to wait for the server's close answer."""
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    """Largest message accepted from the server."""
    max_pending_sync: int = 10_000
    """Sync requests waiting for a reply at once; more fail with TooManyPending."""
    write_limit: int = 256 * 1024
    """Write buffer high-water mark; ``send`` waits for drain above it."""
    compression: bool = False
    """permessage-deflate; not supported yet, must stay False."""
    reconnect: bool = False
    """Reconnect automatically (with backoff) when the connection is lost."""
    reconnect_initial: float = 0.1
    """First reconnect delay, in seconds."""
    reconnect_max: float = 10.0
    """Cap of the reconnect delay, in seconds."""
    outbox_size: int = 0
    """With ``reconnect``: messages (send, broadcast, publish) kept while reconnecting and
    sent, in order, once connected again; past it OutboxFull. 0 (default): such sends raise
    NotRunning. asyncio client only."""


# Options that must be at least 1 (sizes and counts); every other number must be >= 0.
_AT_LEAST_ONE = frozenset(
    {
        "max_message_size",
        "max_connections",
        "write_limit",
        "max_request_size",
        "max_queue",
        "max_queue_bytes",
        "max_subscriptions",
        "max_pending_sync",
    }
)
# Seconds that must be positive: a zero deadline would fail every connection at once.
_POSITIVE_SECONDS = frozenset({"handshake_timeout", "reconnect_initial", "reconnect_max"})


def check_options(options: ServerOptions | ClientOptions) -> None:
    """Check every option's type and range, naming the option; called when an endpoint is built.

    Raises TypeError for a value of the wrong type (``"5"`` for a number, ``"yes"``
    for a bool) and ValueError for one out of range (a negative size or timeout, a
    close code outside 1000-4999), so a mistake fails where it was made instead of
    in every connection later.
    """
    for field in dataclasses.fields(options):
        name = field.name
        value = getattr(options, name)
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
        if kind == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        elif kind == "bool | tuple[str, ...]":
            if isinstance(value, bool):
                continue
            if isinstance(value, str) or not isinstance(value, tuple | list):
                raise TypeError(
                    f"{name} must be True, False or a sequence of patterns, got {value!r}"
                )
            if not all(isinstance(p, str) for p in value):
                raise TypeError(f"{name} patterns must be str, got {value!r}")
        elif kind in ("int", "float", "float | None"):
            if value is None and kind == "float | None":
                continue
            number = (int,) if kind == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, number):
                want = "an int" if kind == "int" else "a number of seconds"
                raise TypeError(f"{name} must be {want}, got {value!r}")
            if name in _AT_LEAST_ONE and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")
            if name in _POSITIVE_SECONDS and not value > 0:
                raise ValueError(f"{name} must be more than 0 seconds, got {value!r}")
            if value < 0 or value != value:  # negative, or NaN
                raise ValueError(f"{name} must not be negative, got {value!r}")
            if name == "slow_client_code" and not 1000 <= value <= 4999:
                raise ValueError(f"{name} must be a close code in 1000-4999, got {value!r}")
        else:  # a new option whose type this check does not know yet
            raise AssertionError(f"check_options: no rule for {name}: {kind}")


def refuse_unsupported(
    options: ServerOptions | ClientOptions, names: Iterable[str], runtime: str
) -> None:
    """Raise TypeError naming the first of ``names`` set to anything but its default.

    For a runtime that lacks an option: a value it would not enforce is refused
    where it was set, never silently ignored (the asyncio Server and Client have them).
    """
    defaults = type(options)()
    for name in names:
        if getattr(options, name) != getattr(defaults, name):
            raise TypeError(
                f"{name} is not supported on the {runtime} runtime (the asyncio Server and "
                "Client have it); leave it at its default or use goomerang_io.Server/Client"
            )
