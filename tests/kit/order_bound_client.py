"""A client off the profile: it pairs sync replies with requests by arrival order, not uuid.

Run by tests/kit/test_conformance_client.py through `goomerang conformance client`;
the test server's out-of-order replies must make it fail the sync task.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from goomerang_proto import ClientConnection, Message, Registry
from goomerang_proto import events as ev
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1


def main() -> int:
    host, port = os.environ["GOOMERANG_ADDR"].rsplit(":", 1)
    n = int(os.environ["GOOMERANG_N"])
    sock = socket.create_connection((host, int(port)), timeout=5)
    conn = ClientConnection(f"{host}:{port}", registry=Registry(MessageV1))
    sent = [f"s{i}" for i in range(n)]
    replies: list[str] = []
    started = False
    while len(replies) < n:
        sock.sendall(conn.data_to_send())
        conn.receive_data(sock.recv(65536))
        for event in conn.events():
            if isinstance(event, ev.Connected) and not started:
                started = True
                for text in sent:
                    conn.send_sync(Message(MessageV1(message=text)))
            elif isinstance(event, ev.SyncReplyReceived):
                replies.append(event.message.payload.message)
    conn.close()
    sock.sendall(conn.data_to_send())
    sock.close()
    complete = replies == sent  # what a client that ignores the uuid would assume
    print(json.dumps({"mode": "sync", "complete": complete}))
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
