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


class Run:
    """What the client waits for: N echoes, then the sync reply, then the close."""

    def __init__(self, n: int) -> None:
        self.n, self.echoes, self.reply, self.closed, self.sync_uuid = n, 0, "", False, ""


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
        conn.close(1000, now=time.monotonic())


def main(addr: str, n: int) -> int:
    host, _, port = addr.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.setblocking(False)
    conn = ClientConnection(  # deadlines in seconds of the clock passed as now (monotonic)
        addr,
        registry=Registry(MessageV1),
        clock=time.time_ns,  # the envelopes' creation time
        handshake_timeout=5.0,
        close_timeout=5.0,
        now=time.monotonic(),
    )
    run, out, give_up = Run(n), bytearray(conn.data_to_send()), time.monotonic() + 10
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    while not (conn.should_abort_transport() or (conn.should_close_transport() and not out)):
        timer, left = conn.get_timer(), give_up - time.monotonic()  # the engine's one timer
        if left <= 0:
            break
        wait = left if timer is None else min(left, timer - time.monotonic())
        for _key, mask in sel.select(max(wait, 0.0)):
            if mask & selectors.EVENT_READ:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:  # reset by the server: as good as an EOF
                    data = b""
                now = time.monotonic()
                conn.receive_data(data, now) if data else conn.receive_eof(now)
        now = time.monotonic()
        if timer is not None and now >= timer:
            conn.handle_timer(now)
        for event in conn.events():
            on_event(conn, run, event)
        conn.apply_pending()  # a framing fault that came after those messages in the same read
        for event in conn.events():
            on_event(conn, run, event)
        out += conn.data_to_send()
        try:
            del out[: sock.send(out) if out else 0]
        except BlockingIOError:
            pass
        except OSError:
            conn.receive_eof(now)
        conn.set_transport_buffer_size(len(out))
        sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0))
    sock.close()
    conn.transport_closed()
    print(f"echoes {run.echoes}/{n}, sync reply {run.reply!r}, closed with 1000: {run.closed}")
    return 0 if run.echoes == n and run.reply == "ping" and run.closed else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args[0] if args else "127.0.0.1:8080", int(args[1]) if len(args) > 1 else 10))
