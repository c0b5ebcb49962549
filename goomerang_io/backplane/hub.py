"""The embedded backplane's hub: runs in the supervisor, relays envelopes between workers."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
from collections.abc import Callable

from goomerang_proto.pb import goomerang_backplane_pb2 as pb

from .base import (
    BackplaneProtocolError,
    decode_envelope,
)
from .stream import DEFAULT_MAX_ENVELOPE, EnvelopeStream, frame_envelope

_DELIVER = pb.Envelope.DELIVER
_HELLO = pb.Envelope.HELLO
_SUBSCRIBE = pb.Envelope.SUBSCRIBE
_UNSUBSCRIBE = pb.Envelope.UNSUBSCRIBE

__all__ = ["LocalHub"]

SelectorCallback = Callable[[int], None]


class _Peer:
    """One worker connected to the hub."""

    __slots__ = ("dropped", "origin", "out", "sock", "stream", "topics", "writing")

    def __init__(self, sock: socket.socket, max_envelope: int) -> None:
        self.sock = sock
        self.stream = EnvelopeStream(max_envelope)
        self.origin = ""
        self.topics: set[str] = set()
        self.out = bytearray()
        self.writing = False
        self.dropped = 0


class LocalHub:
    """The relay of the embedded backplane, on a Unix domain socket.

    Thread-free and asyncio-free: it registers callables as the ``data`` of
    its selector keys, so an owner loop dispatches with
    ``for key, mask in sel.select(t): key.data(mask)``. Use ``attach`` to
    share the supervisor's selector, or ``poll`` to run on its own.
    """

    def __init__(
        self,
        path: str,
        *,
        max_envelope: int = DEFAULT_MAX_ENVELOPE,
        max_buffer: int = 16 * 1024 * 1024,
    ) -> None:
        self.path = path
        self.max_envelope = max_envelope
        self.max_buffer = max_buffer
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._own_selector = False
        self._peers: dict[int, _Peer] = {}
        self._dirty: dict[_Peer, None] = {}
        self.relayed = 0
        self.dropped = 0

    # lifecycle -----------------------------------------------------------

    def open(self) -> None:
        """Bind and listen on ``path`` (a stale socket file there is replaced)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            os.chmod(self.path, 0o600)
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._listener = sock

    def attach(self, selector: selectors.BaseSelector) -> None:
        """Register the listening socket on ``selector`` (opening it first if needed)."""
        if self._listener is None:
            self.open()
        assert self._listener is not None
        self._selector = selector
        selector.register(self._listener, selectors.EVENT_READ, self._on_accept)

    def poll(self, timeout: float | None) -> None:
        """Run one round of the hub's own selector loop (for a hub without an owner loop)."""
        if self._selector is None:
            self._own_selector = True
            self.attach(selectors.DefaultSelector())
        assert self._selector is not None
        for key, mask in self._selector.select(timeout):
            key.data(mask)

    def close(self) -> None:
        """Close every connection and the listener, and remove the socket file."""
        sel = self._selector
        for peer in list(self._peers.values()):
            self._drop_peer(peer)
        if self._listener is not None:
            if sel is not None:
                with contextlib.suppress(KeyError, ValueError):
                    sel.unregister(self._listener)
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        if self._own_selector and sel is not None:
            sel.close()
        self._selector = None

    def close_in_child(self) -> None:
        """In a forked child: close the inherited sockets only.

        No selector calls (the epoll instance is shared with the parent)
        and no unlink (the path still belongs to the parent's hub).
        """
        for peer in self._peers.values():
            peer.sock.close()
        self._peers.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._selector = None

    def status(self) -> dict[str, object]:
        """Connected workers and relay counters."""
        return {
            "backend": "local-hub",
            "path": self.path,
            "peers": len(self._peers),
            "relayed": self.relayed,
            "dropped": self.dropped,
        }

    # selector callbacks ----------------------------------------------------

    def _on_accept(self, mask: int) -> None:
        assert self._listener is not None and self._selector is not None
        for _ in range(64):
            try:
                sock, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            peer = _Peer(sock, self.max_envelope)
            self._peers[sock.fileno()] = peer
            self._selector.register(sock, selectors.EVENT_READ, self._peer_callback(peer))

    def _peer_callback(self, peer: _Peer) -> SelectorCallback:
        def on_event(mask: int) -> None:
            if mask & selectors.EVENT_WRITE:
                self._flush(peer)
            if mask & selectors.EVENT_READ and peer.sock.fileno() >= 0:
                self._on_readable(peer)

        return on_event

    def _on_readable(self, peer: _Peer) -> None:
        try:
            data = peer.sock.recv(256 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop_peer(peer)
            return
        if not data:
            self._drop_peer(peer)
            return
        try:
            payloads = peer.stream.feed(data)
            for payload in payloads:
                self._on_envelope(peer, payload)
        except BackplaneProtocolError:
            self._drop_peer(peer)
        self._flush_dirty()

    def _on_envelope(self, peer: _Peer, payload: bytes) -> None:
        env = decode_envelope(payload)
        op = env.op
        if op == _DELIVER:
            framed = frame_envelope(payload)
            topic = env.topic
            for other in list(self._peers.values()):
                if other is peer or (topic and topic not in other.topics):
                    continue
                self._send(other, framed)
            self.relayed += 1
        elif op == _SUBSCRIBE:
            peer.topics.add(env.topic)
            self._send(peer, frame_envelope(payload))  # the acknowledgement
        elif op == _UNSUBSCRIBE:
            peer.topics.discard(env.topic)
            self._send(peer, frame_envelope(payload))  # the acknowledgement
        elif op == _HELLO:
            peer.origin = env.origin
            # The acknowledgement: every DELIVER the hub handles from now on
            # reaches this peer, so the worker counts as connected only now.
            self._send(peer, frame_envelope(payload))

    def _send(self, peer: _Peer, framed: bytes) -> None:
        """Queue ``framed`` for ``peer``; written by ``_flush_dirty`` after the read batch."""
        if len(peer.out) > self.max_buffer:
            peer.dropped += 1
            self.dropped += 1
            return
        peer.out += framed
        self._dirty[peer] = None

    def _flush_dirty(self) -> None:
        """One write per peer per read batch (not one per message)."""
        dirty, self._dirty = self._dirty, {}
        for peer in dirty:
            if not peer.writing:
                self._flush(peer)

    def _flush(self, peer: _Peer) -> None:
        if peer.out and peer.sock.fileno() >= 0:
            try:
                sent = peer.sock.send(peer.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop_peer(peer)
                return
            del peer.out[:sent]
        if self._selector is None or peer.sock.fileno() < 0:
            return
        if peer.out and not peer.writing:
            peer.writing = True
            self._selector.modify(
                peer.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self._peer_callback(peer)
            )
        elif not peer.out and peer.writing:
            peer.writing = False
            self._selector.modify(peer.sock, selectors.EVENT_READ, self._peer_callback(peer))

    def _drop_peer(self, peer: _Peer) -> None:
        fd = peer.sock.fileno()
        if fd < 0:
            return
        self._peers.pop(fd, None)
        self._dirty.pop(peer, None)
        peer.out.clear()
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(peer.sock)
        peer.sock.close()
