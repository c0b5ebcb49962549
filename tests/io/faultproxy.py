"""A small fault-injecting TCP proxy for the tests (toxiproxy-like), on 127.0.0.1.

``with FaultProxy(("127.0.0.1", port)) as proxy:`` listens on an ephemeral port
(``proxy.addr``) and forwards every accepted connection to the upstream. Faults,
changeable at any time, apply to every connection:

* ``latency``: seconds added before each forwarded chunk;
* ``bandwidth``: bytes per second per direction (None: unlimited);
* ``stall()`` / ``resume()``: stop / restart forwarding (bytes wait in the kernel);
* ``cut_after(up=N, down=M)``: forward N more bytes client->server (M server->client),
  then reset both sides of the connection: a cut in the middle of a frame;
* ``cut_all()``: reset every open connection now.

Thread-based (one thread per direction per connection) so that both blocking
and asyncio tests can use it. The pumps sleep on purpose: latency and bandwidth
are deliberate slowness, not synchronisation.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time

_CHUNK = 16 * 1024
_TICK = 0.05


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0) so the peer sees an abrupt end."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Pair:
    """One proxied connection: the accepted socket and the upstream socket."""

    def __init__(self, downstream: socket.socket, upstream: socket.socket) -> None:
        self.down = downstream
        self.up = upstream
        self.dead = threading.Event()
        self.lock = threading.Lock()

    def cut(self) -> None:
        with self.lock:
            if self.dead.is_set():
                return
            self.dead.set()
        _reset(self.down)
        _reset(self.up)


class FaultProxy:
    """Forward 127.0.0.1:<ephemeral> to ``upstream`` with injectable faults."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.latency = 0.0
        self.bandwidth: int | None = None
        self._flowing = threading.Event()
        self._flowing.set()
        self._budget: dict[str, int | None] = {"up": None, "down": None}
        self._budget_lock = threading.Lock()
        self._stopped = threading.Event()
        self._pairs: list[_Pair] = []
        self._pairs_lock = threading.Lock()
        self.accepted = 0
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)

    # ----------------------------------------------------------- controls
    @property
    def addr(self) -> str:
        """``127.0.0.1:PORT`` to connect to instead of the upstream."""
        return f"127.0.0.1:{self.port}"

    def stall(self) -> None:
        """Stop forwarding in both directions (connections stay open)."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again after ``stall``."""
        self._flowing.set()

    def cut_after(self, up: int | None = None, down: int | None = None) -> None:
        """Reset connections after ``up`` more bytes to the server / ``down`` to the client."""
        with self._budget_lock:
            self._budget = {"up": up, "down": down}

    def clear_cut(self) -> None:
        """Forget a ``cut_after`` that has not fired yet."""
        self.cut_after(None, None)

    def cut_all(self) -> None:
        """Reset every open connection now."""
        with self._pairs_lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.cut()

    def open_connections(self) -> int:
        """Connections currently proxied."""
        with self._pairs_lock:
            return sum(1 for p in self._pairs if not p.dead.is_set())

    # ---------------------------------------------------------- lifecycle
    def start(self) -> FaultProxy:
        """Start accepting."""
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and reset every connection."""
        self._stopped.set()
        self._flowing.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self.cut_all()
        self._accept_thread.join(2.0)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- pumps
    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], _TICK)
                if not ready:
                    continue
                down, _ = self._listener.accept()
            except (OSError, ValueError):
                return
            try:
                up = socket.create_connection(self.upstream, timeout=5.0)
            except OSError:
                _reset(down)
                continue
            for s in (down, up):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(down, up)
            with self._pairs_lock:
                self._pairs = [p for p in self._pairs if not p.dead.is_set()]
                self._pairs.append(pair)
                self.accepted += 1
            for src, dst, direction in ((down, up, "up"), (up, down, "down")):
                threading.Thread(
                    target=self._pump, args=(pair, src, dst, direction), daemon=True
                ).start()

    def _take(self, direction: str, n: int) -> tuple[int, bool]:
        """How many of ``n`` bytes may pass, and whether the cut fires after them."""
        with self._budget_lock:
            budget = self._budget[direction]
            if budget is None:
                return n, False
            allowed = min(n, budget)
            self._budget[direction] = budget - allowed
            if budget - allowed == 0:
                self._budget[direction] = None
                return allowed, True
            return allowed, False

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket, direction: str) -> None:
        try:
            while not pair.dead.is_set():
                # Stalled: stop reading so that bytes queue up in the kernel.
                while not self._flowing.wait(_TICK):
                    if pair.dead.is_set():
                        return
                ready, _, _ = select.select([src], [], [], _TICK)
                if not ready:
                    continue
                if not self._flowing.is_set():
                    continue
                size = _CHUNK
                if self.bandwidth:
                    size = max(1, min(_CHUNK, int(self.bandwidth * _TICK)))
                data = src.recv(size)
                if not data:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                allowed, cut = self._take(direction, len(data))
                if self.latency:
                    time.sleep(self.latency)  # deliberate latency
                if allowed:
                    dst.sendall(data[:allowed])
                if self.bandwidth:
                    time.sleep(len(data) / self.bandwidth)  # deliberate throttling
                if cut:
                    self.cuts += 1
                    pair.cut()
                    return
        except OSError:
            pair.cut()
