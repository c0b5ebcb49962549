"""Engine micro-benchmark: goomerang_proto against wsproto and websockets, no sockets.

Measures, in one run, messages per second of:

(a) parse + unmask + decode: masked client-to-server frames of a 128-byte
    ``goomerang.example.MessageV1`` (kind, payloadSize, creation, payload:
    about 187 bytes on the wire, as a Go client sends them) fed to
    ``ServerConnection.receive_data`` as one large buffer and in 64 KiB chunks,
    through to ``MessageReceived`` events with decoded Messages;
(a') the adapters' path: the same, each event dispatched by type to a handler;
(b) pack + frame: ``ServerConnection.send`` + ``data_to_send`` and ``prepare``;
(c) raw wsproto (framing only): ``wsproto.connection.Connection(SERVER)``
    ``receive_data``/``events`` and ``send(BytesMessage)``;
(d) python-websockets' sans-IO ``ServerProtocol``: ``receive_data``/
    ``events_received`` and ``send_binary``/``data_to_send``.

Each figure is the median of 5 runs of N messages. Targets: our parse+decode
at least 4x raw wsproto parsing and 1x websockets parsing; our pack+frame at
least 1.5x wsproto's send.

Run: ``python benchmarks/engine.py [-n 20000] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable

from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage

from goomerang_proto import ClientConnection, Message, Registry, ServerConnection, prepare
from goomerang_proto import events as ev
from goomerang_proto.codec import pack
from goomerang_proto.frames import OP_BINARY, build_frame
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

CREATION_NS = 1_700_000_000_123_456_789
CHUNK = 64 * 1024
RUNS = 5


def _message() -> Message[MessageV1]:
    return Message(MessageV1(message="m" * 128))


def client_frames(n: int) -> tuple[bytes, bytes]:
    """(envelope, a buffer of ``n`` masked frames of it), as a Go client writes them."""
    envelope = pack(_message(), creation_ns=CREATION_NS)
    frames = b"".join(build_frame(OP_BINARY, envelope, mask=True) for _ in range(n))
    return envelope, frames


def chunks_of(data: bytes, size: int = CHUNK) -> list[bytes]:
    """``data`` cut into reads of ``size`` bytes."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def open_server() -> ServerConnection:
    """A ServerConnection past the upgrade."""
    server = ServerConnection(registry=Registry(MessageV1))
    client = ClientConnection("127.0.0.1:1")
    server.receive_data(client.data_to_send())
    server.data_to_send()
    server.events()
    return server


# ---------------------------------------------------------------- runners


def ours_parse(reads: list[bytes]) -> Callable[[], int]:
    conn = open_server()

    def run() -> int:
        count = 0
        for data in reads:
            conn.receive_data(data)
            for event in conn.events():
                if type(event) is ev.MessageReceived:
                    count += 1
        return count

    return run


def ours_dispatch(reads: list[bytes]) -> Callable[[], int]:
    """The adapters' hot path: after each read, events dispatched by type to a handler."""
    conn = open_server()
    count = [0]

    def on_message(_message: Message[MessageV1]) -> None:
        count[0] += 1  # like the events runner: count, keep nothing

    def run() -> int:
        count[0] = 0
        received = ev.MessageReceived
        for data in reads:
            conn.receive_data(data)
            for event in conn.events():
                if type(event) is received:
                    on_message(event.message)  # type: ignore[attr-defined]
        return count[0]

    return run


def ours_send(n: int) -> Callable[[], int]:
    conn = open_server()
    message = _message()

    def run() -> int:
        send = conn.send
        for _ in range(n):
            send(message)
        conn.data_to_send()
        return n

    conn.clock = lambda: CREATION_NS
    return run


def ours_prepare(n: int) -> Callable[[], int]:
    message = _message()

    def run() -> int:
        for _ in range(n):
            prepare(message, creation_ns=CREATION_NS)
        return n

    return run


def wsproto_parse(reads: list[bytes]) -> Callable[[], int]:
    conn = Connection(ConnectionType.SERVER)

    def run() -> int:
        count = 0
        for data in reads:
            conn.receive_data(data)
            for event in conn.events():
                if isinstance(event, BytesMessage) and event.message_finished:
                    count += 1
        return count

    return run


def wsproto_send(envelope: bytes, n: int) -> Callable[[], int]:
    conn = Connection(ConnectionType.SERVER)

    def run() -> int:
        out = []
        for _ in range(n):
            out.append(conn.send(BytesMessage(data=envelope)))
        b"".join(out)
        return n

    return run


def websockets_parse(reads: list[bytes]) -> Callable[[], int]:
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    proto = ServerProtocol(state=State.OPEN, max_size=None)

    def run() -> int:
        count = 0
        for data in reads:
            proto.receive_data(data)
            count += len(proto.events_received())
        return count

    return run


def websockets_send(envelope: bytes, n: int) -> Callable[[], int]:
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    proto = ServerProtocol(state=State.OPEN)

    def run() -> int:
        for _ in range(n):
            proto.send_binary(envelope)
        b"".join(proto.data_to_send())
        return n

    return run


# ------------------------------------------------------------------ driver


def measure(run: Callable[[], int], n: int) -> float:
    """Median messages per second over RUNS runs (after one warm-up run)."""
    run()
    rates = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        got = run()
        elapsed = time.perf_counter() - t0
        if got != n:
            raise RuntimeError(f"expected {n} messages, got {got}")
        rates.append(n / elapsed)
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    """Run every measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20000, help="messages per run")
    parser.add_argument("--profile", action="store_true", help="cProfile our parse and send")
    args = parser.parse_args(argv)
    n = args.n
    envelope, buffer = client_frames(n)
    whole, chunked = [buffer], chunks_of(buffer)
    frame_len = len(buffer) // n

    if args.profile:
        for name, run in (("parse", ours_parse(chunked)), ("send", ours_send(n))):
            prof = cProfile.Profile()
            prof.runcall(run)
            print(f"--- profile: ours {name}")
            pstats.Stats(prof).sort_stats("tottime").print_stats(12)

    rows = [
        ("parse", "goomerang (one buffer)", measure(ours_parse(whole), n)),
        ("parse", "goomerang (64 KiB reads)", measure(ours_parse(chunked), n)),
        ("parse", "goomerang dispatch (64 KiB)", measure(ours_dispatch(chunked), n)),
        ("parse", "wsproto (one buffer)", measure(wsproto_parse(whole), n)),
        ("parse", "wsproto (64 KiB reads)", measure(wsproto_parse(chunked), n)),
        ("parse", "websockets (one buffer)", measure(websockets_parse(whole), n)),
        ("parse", "websockets (64 KiB reads)", measure(websockets_parse(chunked), n)),
        ("send", "goomerang send+data_to_send", measure(ours_send(n), n)),
        ("send", "goomerang prepare", measure(ours_prepare(n), n)),
        ("send", "wsproto send(BytesMessage)", measure(wsproto_send(envelope, n), n)),
        ("send", "websockets send_binary", measure(websockets_send(envelope, n), n)),
    ]
    rate = {name: r for _, name, r in rows}
    print(f"{n} messages per run, {frame_len} bytes per frame, median of {RUNS} runs")
    print(f"{'what':5} {'implementation':30} {'msg/s':>12} {'us/msg':>8}")
    for kind, name, r in rows:
        print(f"{kind:5} {name:30} {r:12,.0f} {1e6 / r:8.2f}")
    checks = [
        (
            "parse+decode vs wsproto parse (64 KiB reads)",
            "goomerang (64 KiB reads)",
            "wsproto (64 KiB reads)",
            4.0,
        ),
        (
            "dispatch parse+decode vs wsproto parse",
            "goomerang dispatch (64 KiB)",
            "wsproto (64 KiB reads)",
            4.0,
        ),
        (
            "parse+decode vs websockets parse (64 KiB reads)",
            "goomerang (64 KiB reads)",
            "websockets (64 KiB reads)",
            1.0,
        ),
        (
            "pack+frame vs wsproto send",
            "goomerang send+data_to_send",
            "wsproto send(BytesMessage)",
            1.5,
        ),
    ]
    print()
    for label, ours, theirs, target in checks:
        ratio = rate[ours] / rate[theirs]
        verdict = "met" if ratio >= target else "MISSED"
        print(f"{label:50} {ratio:6.2f}x (target {target}x: {verdict})")


if __name__ == "__main__":
    main()
