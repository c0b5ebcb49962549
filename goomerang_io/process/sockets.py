"""Listening sockets that several processes share: SO_REUSEPORT binding and port reservation."""

from __future__ import annotations

import socket

__all__ = ["bind_reuseport", "ensure_port_free", "pick_free_port", "reserve_port"]


def bind_reuseport(host: str | None, port: int, *, backlog: int = 1024) -> socket.socket:
    """A non-blocking listening TCP socket with SO_REUSEADDR and SO_REUSEPORT.

    Every worker binds its own one after the fork; the kernel balances the
    connections over them. ``host`` may be an IPv4 or IPv6 address or name.
    With several workers, ``port`` must not be 0 (each would get its own
    port): reserve one in the parent with ``reserve_port`` first.
    """
    sock = _bound_reuseport(host, port)
    try:
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bound_reuseport(host: str | None, port: int, *, reuseaddr: bool = True) -> socket.socket:
    """A TCP socket bound to ``host:port`` with SO_REUSEPORT (and SO_REUSEADDR)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("SO_REUSEPORT is not available on this platform: use workers=1")
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_ADDRCONFIG
    )
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, _type, proto, _name, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    try:
        if reuseaddr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
    except BaseException:
        sock.close()
        raise
    return sock


def ensure_port_free(host: str | None, port: int) -> None:
    """Raise OSError(EADDRINUSE) when something already listens on ``host:port``.

    Workers bind with SO_REUSEPORT, which a second server of the same user
    would share silently (taking half the connections). A probe bound
    without SO_REUSEPORT fails when any socket listens there, reuse-port or
    not, so a multi-worker server fails at start as a single one does.
    """
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_ADDRCONFIG
    )
    family, _type, proto, _name, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(addr)
        except OSError as exc:
            raise OSError(
                exc.errno, f"address {host}:{port} is already in use (another server?): {exc}"
            ) from exc


def reserve_port(host: str | None = "127.0.0.1") -> socket.socket:
    """Hold a free TCP port on ``host`` for workers that bind it with SO_REUSEPORT.

    The returned socket is bound (never listening) with SO_REUSEPORT only,
    so other programs cannot take the port while it is open (not even with
    SO_REUSEADDR, which two non-listening sockets would grant each other),
    and workers of the same user can still bind and listen on it with
    :func:`bind_reuseport`. It receives no connections (only listening
    sockets do). Keep it open as long as the workers run; the port is
    ``sock.getsockname()[1]``.
    """
    return _bound_reuseport(host, 0, reuseaddr=False)


def pick_free_port(host: str | None = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now.

    There is a short race (another process may take the port before it is
    bound again); :func:`reserve_port` holds the port instead.
    """
    infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _type, proto, _name, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        return int(sock.getsockname()[1])
