"""How long a handler test takes in memory (goomerang_proto.testing.Pair) vs over a real socket.

usage: python benchmarks/kit_pair_vs_socket.py [--tests N] [--requests N]

The same test both ways: register an echo handler, connect one client, one
sync request, check the reply, close. "per test" includes setting up and
tearing down (Pair vs ServerThread + blocking Client on 127.0.0.1:0);
"per request" is the sync round trip alone, once connected. Medians of
repeated runs, measured in the same process and run, reported as times and
as the socket/pair ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from goomerang_io import Message
from goomerang_io.sync import Client
from goomerang_io.testing import ServerThread
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1
from goomerang_proto.testing import Pair


def echo(sender: Any, message: Message[Any]) -> None:
    sender.send(Message(message.payload, message.headers))


def setup(endpoint: Any) -> None:
    endpoint.handle(MessageV1, echo)


def pair_test() -> None:
    pair = Pair(connect=False)
    setup(pair.server)
    client = pair.connect()
    assert client.request(Message(MessageV1(message="hi"))).payload.message == "hi"
    pair.close_all()


def socket_test() -> None:
    with ServerThread(setup) as st:
        client = Client(st.addr)
        client.register_message(MessageV1)
        client.connect()
        assert client.send_sync(Message(MessageV1(message="hi"))).payload.message == "hi"
        client.close()


def median_seconds(fn: Callable[[], None], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tests", type=int, default=20, help="whole tests per way (socket side)")
    ap.add_argument("--requests", type=int, default=2000, help="round trips per way")
    args = ap.parse_args()
    per_test_pair = median_seconds(pair_test, args.tests * 10)
    per_test_socket = median_seconds(socket_test, args.tests)

    pair = Pair(connect=False)
    setup(pair.server)
    pc = pair.connect()
    msg = Message(MessageV1(message="x"))
    per_req_pair = median_seconds(lambda: pc.request(msg) and None, args.requests)
    with ServerThread(setup) as st:
        client = Client(st.addr)
        client.register_message(MessageV1)
        client.connect()
        per_req_socket = median_seconds(lambda: client.send_sync(msg) and None, args.requests)
        client.close()
    print(f"{'':14}{'in memory':>12}{'socket':>12}{'ratio':>8}")
    for name, a, b in (
        ("per test", per_test_pair, per_test_socket),
        ("per request", per_req_pair, per_req_socket),
    ):
        print(f"{name:14}{a * 1e6:>10.0f}us{b * 1e6:>10.0f}us{b / a:>7.0f}x")


if __name__ == "__main__":
    main()
