"""An echo server on a plain ``selectors`` loop, using only the sans-IO engine (goomerang_proto).

``python examples/echo_server.py [HOST:PORT]`` (port 0: any free) echoes MessageV1 as ``goomerang
serve`` does (a sync request's reply gets header ``echo: 1``). Prints ``READY host:port``."""

import selectors
import socket
import sys
import time

from goomerang_proto import Message, Registry, ServerConnection
from goomerang_proto import events as ev
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

CLOSE_TIMEOUT = 5.0  # seconds we wait for the peer to finish a close handshake
sel = selectors.DefaultSelector()


class Peer:
    """One TCP connection: its socket, its engine, the bytes not yet written, its timer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.out, self.deadline = sock, bytearray(), None
        self.conn = ServerConnection(registry=Registry(MessageV1), clock=time.time_ns)


def on_event(conn: ServerConnection, event: ev.Event) -> None:
    if isinstance(event, ev.MessageReceived | ev.SyncRequestReceived):
        m = event.message
        headers = {**m.headers, "echo": "1"} if m.is_sync else m.headers
        conn.send(Message(m.payload, headers), uuid=m.uuid, is_sync=m.is_sync)


def timer(peer: Peer, now: float) -> None:
    """The one timer the engine asks for: the close timeout while a close handshake is pending."""
    if peer.deadline is not None and now >= peer.deadline:
        peer.conn.abort()  # the peer never finished closing
    elif not peer.conn.close_expected():
        peer.deadline = None
    elif peer.deadline is None:
        peer.deadline = now + CLOSE_TIMEOUT


def service(peer: Peer) -> None:
    """After every read, writable socket or due timer: events, output, then close or re-arm."""
    conn = peer.conn
    timer(peer, time.monotonic())
    for event in conn.events():
        on_event(conn, event)
    peer.out += conn.data_to_send()
    try:
        if peer.out:
            del peer.out[: peer.sock.send(peer.out)]
    except BlockingIOError:
        pass
    except OSError:  # the peer is gone
        conn.receive_eof()
    if conn.should_close_transport():  # best effort for what is left: a Close frame at most
        sel.unregister(peer.sock)
        peer.sock.close()
        return
    timer(peer, time.monotonic())
    sel.modify(peer.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE * bool(peer.out)), peer)


def main(listen: str) -> None:
    host, _, port = listen.rpartition(":")
    listener = socket.create_server((host, int(port)))
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    print("READY {}:{}".format(*listener.getsockname()[:2]), flush=True)
    while True:
        peers = [key.data for key in sel.get_map().values() if key.data is not None]
        due = min((p.deadline for p in peers if p.deadline is not None), default=None)
        for key, mask in sel.select(None if due is None else max(0.0, due - time.monotonic())):
            peer = key.data
            if peer is None:  # the listener: a new connection
                sock, _ = listener.accept()
                sock.setblocking(False)
                sel.register(sock, selectors.EVENT_READ, Peer(sock))
                continue
            if mask & selectors.EVENT_READ:
                try:
                    data = peer.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:  # reset by the peer: as good as an EOF
                    data = b""
                peer.conn.receive_data(data) if data else peer.conn.receive_eof()
            service(peer)
        now = time.monotonic()
        for peer in peers:  # due timers
            if peer.deadline is not None and peer.deadline <= now and peer.sock.fileno() != -1:
                service(peer)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080")
