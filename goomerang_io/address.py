"""Listen and server addresses: ``HOST:PORT`` strings, as the Go goomerang takes them."""

from __future__ import annotations

__all__ = ["parse_listen"]


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:8080`` for IPv6) into (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address must be HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
