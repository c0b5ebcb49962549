"""Listen and server addresses: ``HOST:PORT`` strings, as the Go goomerang takes them."""

from __future__ import annotations

__all__ = ["parse_listen"]


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:8080`` for IPv6) into (host, port).

    Raises TypeError when ``listen`` is not a str (``Server(8080)``) and
    ValueError when it is not ``HOST:PORT`` or the port is above 65535.
    """
    if not isinstance(listen, str):
        raise TypeError(
            f"address must be a 'HOST:PORT' str, got {type(listen).__name__} {listen!r} "
            f"(e.g. '127.0.0.1:{listen if isinstance(listen, int) else 8080}')"
        )
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address must be HOST:PORT, got {listen!r}")
    if int(port) > 65535:
        raise ValueError(f"port must be 0-65535, got {port} in {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
