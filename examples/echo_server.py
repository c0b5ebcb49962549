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

sel = selectors.DefaultSelector()
# Engine settings; its deadlines are in seconds of the clock we pass as ``now`` (monotonic).
ENGINE = {"registry": Registry(MessageV1), "clock": time.time_ns, "close_timeout": 5.0}


class Peer:
    """One TCP connection: its socket, its engine, the bytes not yet written, its timer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.out, self.deadline = sock, bytearray(), None
        self.conn = ServerConnection(**ENGINE, handshake_timeout=10.0, now=time.monotonic())


def on_event(conn: ServerConnection, event: ev.Event) -> None:
    if isinstance(event, ev.MessageReceived | ev.SyncRequestReceived):
        m = event.message
        headers = {**m.headers, "echo": "1"} if m.is_sync else m.headers
        conn.send(Message(m.payload, headers), uuid=m.uuid, is_sync=m.is_sync, in_response=True)


def service(peer: Peer) -> None:
    """After every read, writable socket or due timer: events, output, then close or re-arm."""
    conn = peer.conn
    for event in conn.events():
        on_event(conn, event)
    conn.apply_pending()  # a framing fault that came after those messages in the same read
    for event in conn.events():
        on_event(conn, event)
    peer.out += conn.data_to_send()
    try:
        if peer.out:
            del peer.out[: peer.sock.send(peer.out)]
    except BlockingIOError:
        pass
    except OSError:  # the peer is gone
        conn.receive_eof(time.monotonic())
    conn.set_transport_buffer_size(len(peer.out))
    if conn.should_abort_transport() or (conn.should_close_transport() and not peer.out):
        sel.unregister(peer.sock)
        peer.sock.close()
        conn.transport_closed()
        return
    peer.deadline = conn.get_timer()  # the one timer the engine asks for; main() fires it
    reading = selectors.EVENT_READ if conn.should_read() else 0  # our replies pile up: wait
    sel.modify(peer.sock, reading | (selectors.EVENT_WRITE if peer.out else 0) or reading, peer)


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
                now = time.monotonic()
                peer.conn.receive_data(data, now) if data else peer.conn.receive_eof(now)
            service(peer)
        now = time.monotonic()
        for peer in peers:  # due timers
            if peer.deadline is not None and peer.deadline <= now and peer.sock.fileno() != -1:
                peer.conn.handle_timer(now)
                service(peer)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080")
