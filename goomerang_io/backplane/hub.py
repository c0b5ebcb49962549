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
_JOIN = pb.Envelope.JOIN
_LEAVE = pb.Envelope.LEAVE

__all__ = ["LocalHub"]

SelectorCallback = Callable[[int], None]


class _Peer:
    """One worker connected to the hub."""

    __slots__ = ("dropped", "members", "origin", "out", "sock", "stream", "topics", "writing")

    def __init__(self, sock: socket.socket, max_envelope: int) -> None:
        self.sock = sock
        self.stream = EnvelopeStream(max_envelope)
        self.origin = ""
        self.topics: set[str] = set()
        # (topic, group) -> number of this worker's connections in that queue group
        self.members: dict[tuple[str, str], int] = {}
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
        # topic -> group -> worker -> members there; and each group's pick counter
        self._groups: dict[str, dict[str, dict[_Peer, int]]] = {}
        self._turns: dict[tuple[str, str], int] = {}
        self.relayed = 0
        self.dropped = 0
        self.group_deliveries = 0

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
            "groups": sum(len(g) for g in self._groups.values()),
            "group_deliveries": self.group_deliveries,
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
            topic = env.topic
            groups = self._groups.get(topic) if topic else None
            if groups:
                self._deliver_with_groups(peer, env, groups)
                self.relayed += 1
                return
            framed = frame_envelope(payload)
            for other in list(self._peers.values()):
                if other is peer or (topic and topic not in other.topics):
                    continue
                self._send(other, framed)
            self.relayed += 1
        elif op == _JOIN or op == _LEAVE:
            self._count_member(peer, env.topic, env.group, 1 if op == _JOIN else -1)
            self._send(peer, frame_envelope(payload))  # the acknowledgement
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

    def _count_member(self, peer: _Peer, topic: str, group: str, delta: int) -> None:
        key = (topic, group)
        count = peer.members.get(key, 0) + delta
        by_peer = self._groups.setdefault(topic, {}).setdefault(group, {})
        if count > 0:
            peer.members[key] = count
            by_peer[peer] = count
        else:
            peer.members.pop(key, None)
            by_peer.pop(peer, None)
            if not by_peer:
                del self._groups[topic][group]
                self._turns.pop(key, None)
                if not self._groups[topic]:
                    del self._groups[topic]

    def _pick_worker(self, topic: str, group: str, by_peer: dict[_Peer, int]) -> _Peer:
        """Weighted round robin: worker w gets ``members(w) / members(all)`` of the turns.

        Each worker then picks one of its own members round robin, so every
        member of the group gets an equal share over all workers.
        """
        key = (topic, group)
        turn = self._turns.get(key, 0)
        self._turns[key] = turn + 1
        slot = turn % sum(by_peer.values())
        for peer, count in by_peer.items():
            if slot < count:
                return peer
            slot -= count
        raise AssertionError("unreachable: slot < total")  # pragma: no cover

    def _deliver_with_groups(
        self, origin: _Peer, env: pb.Envelope, groups: dict[str, dict[_Peer, int]]
    ) -> None:
        """One envelope per worker: its plain subscribers (not the origin's), its groups."""
        topic = env.topic
        chosen: dict[_Peer, list[str]] = {}
        for group, by_peer in groups.items():
            chosen.setdefault(self._pick_worker(topic, group, by_peer), []).append(group)
            self.group_deliveries += 1
        for other in list(self._peers.values()):
            plain = other is not origin and topic in other.topics
            serve = chosen.get(other)
            if not plain and not serve:
                continue
            out = pb.Envelope()
            out.CopyFrom(env)
            if serve:
                out.groups.extend(serve)
            out.groups_only = not plain
            self._send(other, frame_envelope(out.SerializeToString()))

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
        for (topic, group), count in list(peer.members.items()):
            self._count_member(peer, topic, group, -count)
        peer.out.clear()
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(peer.sock)
        peer.sock.close()
