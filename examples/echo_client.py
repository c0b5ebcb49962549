"""A client on a plain ``selectors`` loop, using only the sans-IO engine (goomerang_proto).

``python examples/echo_client.py [HOST:PORT] [N]`` connects to an echo server (``goomerang
serve``, examples/echo_server.py, the Go refserver), sends N MessageV1 and one sync request,
waits for every echo and the reply, closes with 1000 and exits 0 (1 on failure or after 10 s)."""

import selectors
import socket
import sys
import time

from goomerang_proto import ClientConnection, Message, Registry
from goomerang_proto import events as ev
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

CLOSE_TIMEOUT = 5.0  # seconds we wait for the server to answer our Close


class Run:
    """What the client waits for: N echoes, then the sync reply, then the close."""

    def __init__(self, n: int) -> None:
        self.n, self.echoes, self.reply, self.closed = n, 0, "", False
        self.sync_uuid, self.deadline = "", None


def on_event(conn: ClientConnection, run: Run, event: ev.Event) -> None:
    if isinstance(event, ev.Connected):
        for i in range(run.n):
            conn.send(Message(MessageV1(message=f"m{i}"), {"i": str(i)}))
        run.sync_uuid = conn.send_sync(Message(MessageV1(message="ping")))
    elif isinstance(event, ev.MessageReceived):
        run.echoes += 1
    elif isinstance(event, ev.SyncReplyReceived) and event.message.uuid == run.sync_uuid:
        run.reply = event.message.payload.message
    elif isinstance(event, ev.ConnectionClosed):
        run.closed = event.code == 1000
    if run.echoes == run.n and run.reply and conn.status.name == "RUNNING":
        conn.close(1000)


def timer(conn: ClientConnection, run: Run, now: float) -> None:
    """The one timer the engine asks for: the close timeout while a close handshake is pending."""
    if run.deadline is not None and now >= run.deadline:
        conn.abort()  # the server never finished closing
    elif not conn.close_expected():
        run.deadline = None
    elif run.deadline is None:
        run.deadline = now + CLOSE_TIMEOUT


def main(addr: str, n: int) -> int:
    host, _, port = addr.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.setblocking(False)
    conn = ClientConnection(addr, registry=Registry(MessageV1), clock=time.time_ns)
    run, out, give_up = Run(n), bytearray(conn.data_to_send()), time.monotonic() + 10
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    while not conn.should_close_transport() and time.monotonic() < give_up:
        wait = min(give_up, run.deadline or give_up) - time.monotonic()
        for _key, mask in sel.select(max(wait, 0.0)):
            if mask & selectors.EVENT_READ:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    data = None
                except OSError:  # reset by the server: as good as an EOF
                    data = b""
                if data is not None:
                    conn.receive_data(data) if data else conn.receive_eof()
        timer(conn, run, time.monotonic())
        for event in conn.events():
            on_event(conn, run, event)
        out += conn.data_to_send()
        if out:
            try:
                del out[: sock.send(out)]
            except BlockingIOError:
                pass
            except OSError:
                conn.receive_eof()
        timer(conn, run, time.monotonic())
        sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE * bool(out)))
    sock.close()
    print(f"echoes {run.echoes}/{n}, sync reply {run.reply!r}, closed with 1000: {run.closed}")
    return 0 if run.echoes == n and run.reply == "ping" and run.closed else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args[0] if args else "127.0.0.1:8080", int(args[1]) if len(args) > 1 else 10))
