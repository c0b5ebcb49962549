"""Opening a blocking connection: TCP, optional TLS and the WebSocket upgrade, in one deadline."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable

from goomerang_proto import ClientConnection, ConnectionLost, HandshakeError
from goomerang_proto import events as ev

from ..tlserrors import tls_error
from .connection import READ_SIZE, TLSBridge


class Opened:
    """What :func:`open_connection` hands over: the socket, its TLS bridge and early events."""

    __slots__ = ("early", "sock", "tls")

    def __init__(self, sock: socket.socket, tls: TLSBridge | None, early: list[ev.Event]):
        self.sock = sock
        self.tls = tls
        self.early = early


def open_connection(
    engine: ClientConnection,
    host: str,
    port: int,
    *,
    timeout: float,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> Opened:
    """Connect, run the TLS handshake (with ``tls``) and the upgrade within ``timeout`` seconds.

    Raises HandshakeError past the deadline or when the server refuses the
    upgrade (its ``status`` is the HTTP status), ConnectionLost when TCP fails.
    Frames that came with the 101 answer are returned as ``early`` events.
    """
    where = f"{host}:{port}"
    deadline = time.monotonic() + timeout

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise HandshakeError(f"could not connect to {where} within {timeout} s")
        return left

    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise HandshakeError(f"could not connect to {where} within {timeout} s") from None
    except OSError as exc:
        raise ConnectionLost(f"could not connect to {where}: {exc}") from exc
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bridge: TLSBridge | None = None
        if tls is not None:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = tls.wrap_bio(incoming, outgoing, server_hostname=server_hostname or host)
            bridge = TLSBridge(obj, incoming, outgoing)
            try:
                _tls_handshake(sock, bridge, remaining)
            except ssl.SSLError as exc:
                raise tls_error(where, server_hostname or host, exc) from exc
        early = _upgrade(sock, engine, bridge, remaining)
    except TimeoutError:
        sock.close()
        raise HandshakeError(f"could not connect to {where} within {timeout} s") from None
    except OSError as exc:
        sock.close()
        raise ConnectionLost(f"could not connect to {where}: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    return Opened(sock, bridge, early)


def _recv(sock: socket.socket, remaining: Callable[[], float]) -> bytes:
    sock.settimeout(remaining())
    return sock.recv(READ_SIZE)


def _send(sock: socket.socket, data: bytes, remaining: Callable[[], float]) -> None:
    if data:
        sock.settimeout(remaining())
        sock.sendall(data)  # the timeout bounds the whole call (Python >= 3.5)


def _tls_handshake(sock: socket.socket, bridge: TLSBridge, remaining: Callable[[], float]) -> None:
    while True:
        try:
            bridge.tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        _send(sock, bridge.outgoing.read(), remaining)
        data = _recv(sock, remaining)
        if not data:
            raise HandshakeError("the server closed the connection during the TLS handshake")
        bridge.incoming.write(data)
    _send(sock, bridge.outgoing.read(), remaining)


def _upgrade(
    sock: socket.socket,
    engine: ClientConnection,
    bridge: TLSBridge | None,
    remaining: Callable[[], float],
) -> list[ev.Event]:
    request = engine.data_to_send()
    _send(sock, bridge.encode(request) if bridge else request, remaining)
    early: list[ev.Event] = []
    connected = False
    while True:
        data = _recv(sock, remaining)
        if data:
            engine.receive_data(bridge.decode(data) if bridge else data)
        else:
            engine.receive_eof()
        for event in engine.events():
            if connected:
                early.append(event)  # came with the 101 answer: the IO thread handles it
            elif isinstance(event, ev.Connected):
                connected = True
            elif isinstance(event, ev.ConnectionClosed):
                raise event.error or HandshakeError(
                    f"connection closed during the upgrade: {event.reason}"
                )
        if connected:
            return early


__all__ = ["Opened", "open_connection"]
