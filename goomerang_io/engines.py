"""Engines built from the options: one place maps ``ServerOptions`` and ``ClientOptions``
onto the engine's keyword arguments, for every runtime.

``now`` is the runtime's monotonic clock in seconds (``loop.time()``,
``trio.current_time()``, ``time.monotonic()``): the engine's deadlines are on it.
Wall-clock timestamps (the envelope's creation time) come from ``time.time_ns``.
A zero or None ``ping_interval`` / ``ping_timeout`` / ``slow_client_limit``
means "never", as in the options' docstrings.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from goomerang_proto import ClientConnection, Registry, ServerConnection

from .options import ClientOptions, ServerOptions

__all__ = ["client_engine", "host_header", "server_engine"]


def server_engine(
    options: ServerOptions, registry: Registry, now: float, **extra: Any
) -> ServerConnection:
    """A ``ServerConnection`` for one accepted connection; ``extra`` goes to the engine as it
    is (``tls=True``, ``auto_accept=False`` for a server that admits upgrades itself)."""
    o = options
    return ServerConnection(
        registry=registry,
        max_message_size=o.max_message_size,
        max_request_size=o.max_request_size,
        clock=time.time_ns,
        handshake_timeout=o.handshake_timeout,
        ping_interval=o.ping_interval or None,
        ping_timeout=o.ping_timeout or None,
        close_timeout=o.close_timeout,
        high_water=o.write_limit,
        max_buffered=o.slow_client_limit or None,
        overflow_code=o.slow_client_code,
        now=now,
        **extra,
    )


def host_header(host: str, port: int) -> str:
    """The upgrade request's ``Host`` value (RFC 7230 section 5.4; IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def client_engine(
    options: ClientOptions,
    host: str,
    port: int,
    path: str,
    headers: Iterable[tuple[str, str]],
    registry: Registry,
    now: float,
) -> ClientConnection:
    """A ``ClientConnection`` that upgrades on ``path`` of ``host:port`` with the extra
    ``headers``; the handshake deadline is ``handshake_timeout`` seconds from ``now``."""
    o = options
    return ClientConnection(
        host_header(host, port),
        path,
        headers=headers,
        registry=registry,
        max_message_size=o.max_message_size,
        clock=time.time_ns,
        handshake_timeout=o.handshake_timeout,
        ping_interval=o.heartbeat_interval or None,
        ping_timeout=o.ping_timeout or None,
        close_timeout=o.close_timeout,
        high_water=o.write_limit,
        now=now,
    )
