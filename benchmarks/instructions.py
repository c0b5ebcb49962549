"""Instructions per message on the server's and client's per-message paths (callgrind).

usage: instructions.py [-n N] [--paths floor,rr,pipe,bcast,client] [--json FILE]
                       [--no-valgrind] [--jobs J] [--compiled DIR]

A yardstick that does not move with the machine: each path runs in-process on
the real ``Server`` / ``Client`` and their connection objects, with a fake
transport in place of the socket, under ``valgrind --tool=callgrind``, which
counts the instructions the process executes. Those repeat from run to run
whatever else the machine does, once ``PYTHONHASHSEED`` (0), the clock
(``time.time_ns``, the engines' clock) and the randomness (``os.urandom``:
uuids, masking keys, handshake keys) are fixed, which this script does.

Every path is run twice in one process, on fresh connections, after a warm-up:
once with N messages and once with 2N. Each measured run lies between two
calls of ``os.getppid()``, and callgrind (``--dump-before=getppid``) writes its
counts at each call, so set-up and verification stay outside (and the
objects that exist before a run are frozen, ``gc.freeze()``, so that
collections during it do not depend on how much the process imported); the
figure is

    (I(2N) - I(N)) / N     instructions per message,

so what does not grow with N (the first call of a function, a gc generation
that happens once) cancels out as well.

Paths (the reads are those a real socket would give):

* ``floor``: the TCP floor's protocol (``peers/tcp_floor.py``: 4-byte length
  prefix, one ``transport.write`` per message), one 128-byte message per read:
  what the loop and this harness cost with no WebSocket or goomerang at all;
* ``rr``: one sync ``MessageV1`` request per read (128-byte text, as gmrload
  sends), answered by a plain-function echo handler (``goomerang serve``'s
  behaviour: the reply carries header ``echo: 1``);
* ``pipe``: async ``MessageV1`` frames back to back, read 64 KiB at a time,
  each echoed;
* ``bcast``: one ``BroadcastCmd`` per read from one of 100 connections; every
  one of the 100 (the sender too, as in Go) gets the message: per broadcast
  (and per delivery, /100);
* ``client``: ``Client.send_sync`` round trips, one at a time, against a
  scripted peer whose replies are prepared in advance: the client's own cost.

After each measured run the bytes the fake transports got are decoded by an
independent engine and checked (count, kind, uuid); a run that did not process
every message fails the script. ``--no-valgrind`` runs the same paths without
callgrind (the checks still apply; no figures): the smoke test uses it.

``--compiled DIR`` measures every path twice, on the pure engine and on the
mypyc-compiled one that ``make compiled`` builds into DIR (``build/compiled``),
and prints both side by side; each child reports which engine it imported and
a mismatch fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CREATION_NS = 1_700_000_000_123_456_789  # the fixed clock
PATHS = ("floor", "rr", "pipe", "bcast", "client", "rr+metrics", "pipe+metrics", "rr+metrics-mp")
DEFAULT_N = {"floor": 1000, "rr": 1000, "pipe": 4000, "bcast": 100, "client": 1000}
DEFAULT_N.update({"rr+metrics": 1000, "pipe+metrics": 4000, "rr+metrics-mp": 1000})
WARMUP = {"floor": 100, "rr": 100, "pipe": 500, "bcast": 10, "client": 100}
WARMUP.update({"rr+metrics": 100, "pipe+metrics": 500, "rr+metrics-mp": 100})
TITLES = {
    "floor": "TCP floor, one message per read",
    "rr": "sync echo, one request per read",
    "pipe": "pipelined echo, 64 KiB reads",
    "rr+metrics": "sync echo, one request per read, metrics",
    "pipe+metrics": "pipelined echo, 64 KiB reads, metrics",
    "rr+metrics-mp": "rr, metrics written for a multi-worker scrape",
    "bcast": "broadcast to 100 targets, per broadcast",
    "client": "Client.send_sync round trip",
}
BCAST_TARGETS = 100
TEXT = "m" * 128
READ_SIZE = 64 * 1024
SYNC_TIMEOUT = 30.0  # the send_sync timeout in the client path (valgrind is slow)


# ------------------------------------------------------------ determinism
class _Urandom:
    """Deterministic ``os.urandom``: 16-byte draws (uuid4, handshake keys) count up, others seeded.

    uuid4 is ``UUID(bytes=os.urandom(16), version=4)``, so the k-th 16-byte
    draw makes a uuid the scripted client peer can compute in advance.
    """

    def __init__(self) -> None:
        self.count = 0
        self._rng = random.Random(1)

    def __call__(self, size: int) -> bytes:
        if size == 16:
            self.count += 1
            return self.count.to_bytes(16, "big")
        return self._rng.randbytes(size)

    def uuid_at(self, k: int) -> str:
        import uuid

        return str(uuid.UUID(bytes=k.to_bytes(16, "big"), version=4))


URANDOM = _Urandom()


def fix_environment() -> None:
    """Fix the clock and the randomness for this process (before any goomerang object exists)."""
    time.time_ns = itertools.repeat(CREATION_NS).__next__  # a C callable, like the real one
    os.urandom = URANDOM
    global _Message
    from goomerang_io import Message

    _Message = Message


_Message: Any = None  # goomerang_io.Message, imported by fix_environment


MARKERS = [True]  # off during the warm-up


class CallCounter:
    """``--calls``: Python and C calls made between two markers, by function (sys.setprofile)."""

    def __init__(self) -> None:
        self.on = False
        self.runs: list[Counter[str]] = []

    def toggle(self) -> None:
        if self.on:
            sys.setprofile(None)
            self.on = False
            return
        counts: Counter[str] = Counter()
        self.runs.append(counts)

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                code = frame.f_code
                name = getattr(code, "co_qualname", code.co_name)
                counts[f"{Path(code.co_filename).name}:{name}"] += 1
            elif event == "c_call":
                counts[f"C:{getattr(arg, '__qualname__', arg)}"] += 1

        self.on = True
        sys.setprofile(profile)


CALLS: CallCounter | None = None


def marker() -> None:
    """Boundary of a measured run: callgrind dumps its counts before each getppid call."""
    if MARKERS[0]:
        if CALLS is not None:
            CALLS.toggle()
        os.getppid()


# ------------------------------------------------------------ fake socket
class FakeTransport(asyncio.Transport):
    """The transport a socket would give a protocol: writes are kept (or passed to ``on_write``)."""

    def __init__(
        self, protocol: asyncio.BaseProtocol, on_write: Callable[[bytes], None] | None = None
    ) -> None:
        super().__init__()
        self.protocol = protocol
        self.writes: list[bytes] = []
        self.on_write = on_write
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.on_write is not None:
            self.on_write(bytes(data))
        else:
            self.writes.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def take(self) -> bytes:
        """Everything written so far (and forget it)."""
        data = b"".join(self.writes)
        self.writes.clear()
        return data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def can_write_eof(self) -> bool:
        return False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()


def _loop_base() -> type[asyncio.AbstractEventLoop]:
    try:
        import uvloop

        return uvloop.Loop  # type: ignore[no-any-return]
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.SelectorEventLoop


class CaptureLoop(_loop_base()):  # type: ignore[misc]
    """The event loop (uvloop when installed) with two hooks for in-process runs.

    ``create_server`` still binds (127.0.0.1, port 0) but remembers the
    protocol factory, so connections can be made from it with a fake transport;
    ``create_connection`` makes the client's protocol with a FakeTransport
    from ``connect_fake`` instead of connecting.
    """

    factories: list[Callable[[], asyncio.BaseProtocol]]
    connect_fake: Callable[[asyncio.BaseProtocol], FakeTransport] | None

    async def create_server(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        if not hasattr(self, "factories"):
            self.factories = []
        self.factories.append(protocol_factory)
        return await super().create_server(protocol_factory, *args, **kwargs)

    async def create_connection(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        connect = getattr(self, "connect_fake", None)
        if connect is None:
            return await super().create_connection(protocol_factory, *args, **kwargs)
        protocol = protocol_factory()
        transport = connect(protocol)
        protocol.connection_made(transport)
        return transport, protocol


async def turn() -> None:
    """Let the loop run once, as it does between two socket reads."""
    await asyncio.sleep(0)


# ------------------------------------------------------------ goomerang side
def echo_handler(sender: Any, message: Any) -> None:
    """``goomerang serve``'s echo: a sync request's reply gets header ``echo: 1``."""
    if message.is_sync:
        headers = dict(message.headers)
        headers["echo"] = "1"
        sender.send(_Message(message.payload, headers))
    else:
        sender.send(_Message(message.payload, message.headers))


async def start_server(metrics: bool = False) -> tuple[Any, Callable[[], asyncio.BaseProtocol]]:
    """``goomerang serve``'s server (no pings: none would fire in a real run either).

    With ``metrics``: as ``goomerang serve --metrics`` (one process), a ``ServerMetrics``
    recording every Go metric (on a registry of its own).
    """
    from goomerang_io import Server
    from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

    recorder = None
    if metrics:
        from prometheus_client import CollectorRegistry

        from goomerang_io.metrics import ServerMetrics

        recorder = ServerMetrics(registry=CollectorRegistry())
    server = Server("127.0.0.1:0", ping_interval=None, metrics=recorder)
    server.handle(MessageV1, echo_handler)
    await server.start()
    loop = asyncio.get_running_loop()
    factories = getattr(loop, "factories", [])
    if not factories:
        raise RuntimeError("Server.start() did not call loop.create_server: cannot capture it")
    return server, factories[-1]


async def open_server_connection(
    factory: Callable[[], asyncio.BaseProtocol],
) -> tuple[asyncio.Protocol, FakeTransport, Any]:
    """One server connection past the upgrade, fed by a fake transport.

    The only place that knows how the server makes its connections: from the
    protocol factory it gave ``loop.create_server``. Returns (protocol, its
    transport, a goomerang_proto ClientConnection in RUNNING state that builds
    the client's frames and decodes the server's).
    """
    from goomerang_proto import ClientConnection, Registry
    from goomerang_proto import events as ev
    from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

    proto = factory()
    assert isinstance(proto, asyncio.Protocol)
    transport = FakeTransport(proto)
    proto.connection_made(transport)
    registry = Registry(MessageV1)
    try:  # as gmrload and the Go client: no goomerang extension offered
        peer = ClientConnection("127.0.0.1:8080", registry=registry, clock=_clock, offer=())
    except TypeError:  # an engine without extensions
        peer = ClientConnection("127.0.0.1:8080", registry=registry, clock=_clock)
    proto.data_received(peer.data_to_send())
    for _ in range(20):  # admission may take a loop turn or two
        if transport.writes:
            break
        await turn()
    peer.receive_data(transport.take())
    events = peer.events()
    if not any(isinstance(e, ev.Connected) for e in events):
        raise RuntimeError(f"upgrade failed: {events}")
    return proto, transport, peer


def _clock() -> int:
    return CREATION_NS


def decoded(peer: Any, data: bytes) -> list[Any]:
    """The messages in ``data`` (server to client bytes), decoded by ``peer``."""
    from goomerang_proto import events as ev

    peer.receive_data(data)
    out = []
    for event in peer.events():
        if isinstance(event, (ev.MessageReceived, ev.SyncReplyReceived)):
            out.append(event.message)
        else:
            raise RuntimeError(f"unexpected event from the server: {event}")
    return out


def message() -> Any:
    from goomerang_io import Message
    from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

    return Message(MessageV1(message=TEXT))


# ------------------------------------------------------------ the paths
# Each returns (prepare(n) -> run, where run() measures n messages and returns
# a check function). A Runner does: warm-up, N, 2N, with markers around runs.

Run = Callable[[], Awaitable[Callable[[], int]]]


def rr_uuid(i: int) -> str:
    return f"cccccccc-0000-4000-8000-{i:012x}"


async def path_floor(n: int) -> Run:
    sys.path.insert(0, str(HERE / "peers"))
    from tcp_floor import FloorEcho

    proto = FloorEcho()
    transport = FakeTransport(proto)
    proto.connection_made(transport)
    payload = TEXT.encode()
    frame = len(payload).to_bytes(4, "big") + payload
    reads = [frame] * n

    async def run() -> Callable[[], int]:
        marker()
        for data in reads:
            proto.data_received(data)
            await turn()
        marker()
        return lambda: sum(1 for w in transport.writes if w == frame)

    return run


async def path_rr(n: int, factory: Callable[[], asyncio.BaseProtocol]) -> Run:
    proto, transport, peer = await open_server_connection(factory)
    msg = message()
    reads = []
    for i in range(n):
        peer.send(msg, uuid=rr_uuid(i), is_sync=True)
        reads.append(peer.data_to_send())

    async def run() -> Callable[[], int]:
        marker()
        for data in reads:
            proto.data_received(data)
            await turn()
        marker()

        def check() -> int:
            if len(transport.writes) != n:
                raise RuntimeError(f"{len(transport.writes)} writes for {n} requests, not one each")
            replies = decoded(peer, transport.take())
            return sum(
                1
                for i, r in enumerate(replies)
                if r.is_sync and r.uuid == rr_uuid(i) and r.payload.message == TEXT
            )

        return check

    return run


async def path_pipe(n: int, factory: Callable[[], asyncio.BaseProtocol]) -> Run:
    proto, transport, peer = await open_server_connection(factory)
    msg = message()
    for _ in range(n):
        peer.send(msg)
    stream = peer.data_to_send()
    reads = [stream[i : i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)]

    async def run() -> Callable[[], int]:
        marker()
        for data in reads:
            proto.data_received(data)
            await turn()
        marker()
        return lambda: sum(
            1
            for r in decoded(peer, transport.take())
            if not r.is_sync and r.payload.message == TEXT
        )

    return run


async def path_bcast(n: int, factory: Callable[[], asyncio.BaseProtocol]) -> Run:
    conns = [await open_server_connection(factory) for _ in range(BCAST_TARGETS)]
    proto, _transport, peer = conns[0]
    msg = message()
    reads = []
    for _ in range(n):
        peer.broadcast(msg)
        reads.append(peer.data_to_send())

    async def run() -> Callable[[], int]:
        marker()
        for data in reads:
            proto.data_received(data)
            await turn()
        marker()

        def check() -> int:
            per_conn = [
                sum(1 for r in decoded(p, t.take()) if r.payload.message == TEXT)
                for _, t, p in conns
            ]
            if min(per_conn) != n:
                raise RuntimeError(f"a target got {min(per_conn)} of {n} broadcasts")
            for p, t, _ in conns:
                t.close()
                del p
            return n

        return check

    return run


class ScriptedPeer:
    """The server side of the client path: a real engine for the upgrade, then canned replies."""

    def __init__(self) -> None:
        from goomerang_proto import Registry, ServerConnection
        from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

        self.engine = ServerConnection(registry=Registry(MessageV1), clock=lambda: CREATION_NS)
        self.replies: Iterator[bytes] | None = None
        self.requests: list[bytes] = []
        self.transport: FakeTransport | None = None

    def connect(self, protocol: asyncio.BaseProtocol) -> FakeTransport:
        self.transport = FakeTransport(protocol, self.on_write)
        return self.transport

    def on_write(self, data: bytes) -> None:
        assert self.transport is not None
        protocol = self.transport.protocol
        assert isinstance(protocol, asyncio.Protocol)
        loop = asyncio.get_running_loop()
        if self.replies is not None:  # measured: the reply arrives on the next loop turn
            self.requests.append(data)
            loop.call_soon(protocol.data_received, next(self.replies))
            return
        self.engine.receive_data(data)
        out = self.engine.data_to_send()
        if out:
            loop.call_soon(protocol.data_received, out)

    def prepare_replies(self, uuids: list[str]) -> None:
        """One sync reply frame per uuid, in order, built by the peer's engine."""
        from goomerang_io import Message

        self.engine.events()
        frames = []
        for uid in uuids:
            self.engine.send(Message(message().payload, {"echo": "1"}), uuid=uid, is_sync=True)
            frames.append(self.engine.data_to_send())
        self.replies = iter(frames)

    def verify(self, uuids: list[str]) -> int:
        """Feed the recorded requests to the engine: how many were the expected sync requests."""
        from goomerang_proto import events as ev

        self.replies = None
        self.engine.receive_data(b"".join(self.requests))
        self.requests.clear()
        got = [
            e.message.uuid for e in self.engine.events() if isinstance(e, ev.SyncRequestReceived)
        ]
        return sum(1 for a, b in zip(got, uuids, strict=False) if a == b)


async def path_client(n: int) -> Run:
    from goomerang_io import Client
    from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

    loop = asyncio.get_running_loop()
    peer = ScriptedPeer()
    loop.connect_fake = peer.connect  # type: ignore[attr-defined]
    client = Client("127.0.0.1:8080", heartbeat_interval=None)
    client.register_message(MessageV1)
    await client.connect()
    loop.connect_fake = None  # type: ignore[attr-defined]
    msg = message()
    first = URANDOM.count + 1
    uuids = [URANDOM.uuid_at(k) for k in range(first, first + n)]
    peer.prepare_replies(uuids)

    async def run() -> Callable[[], int]:
        replies = 0
        marker()
        for _ in range(n):
            reply = await client.send_sync(msg, timeout=SYNC_TIMEOUT)
            replies += reply.is_sync
        marker()

        def check() -> int:
            sent = peer.verify(uuids)
            if sent != n:
                raise RuntimeError(f"the peer saw {sent} of {n} expected sync requests")
            return replies

        return check

    return run


async def run_child(path: str, n: int, warmup: int) -> dict[str, Any]:
    """Warm-up, then N and 2N messages on fresh connections; the checks' counts."""
    server = None
    if path == "rr+metrics-mp":  # as a worker of `serve --workers N --metrics` does
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gmr-instr-metrics-")
    if path in ("rr", "pipe", "bcast", "rr+metrics", "pipe+metrics", "rr+metrics-mp"):
        server, factory = await start_server(metrics="+metrics" in path)
        makers: dict[str, Callable[[int], Awaitable[Run]]] = {
            "rr": lambda k: path_rr(k, factory),
            "pipe": lambda k: path_pipe(k, factory),
            "bcast": lambda k: path_bcast(k, factory),
        }
        make = makers[path.split("+")[0]]
    else:
        make = path_floor if path == "floor" else path_client
    done = []
    for count, measured in ((warmup, False), (n, True), (2 * n, True)):
        run = await make(count)
        MARKERS[0] = measured
        # What exists now (modules, set-up) is never collected during the run:
        # the count must not depend on how much else the process imported.
        gc.collect()
        gc.freeze()
        check = await run()
        got = check()
        if got != count:
            raise RuntimeError(f"{path}: {got} of {count} messages processed")
        done.append(got)
    if server is not None and server.metrics is not None:  # every message recorded, once
        recorded = server.metrics.registry.get_sample_value(
            "goomerang_server_message_received_size_bytes_count",
            {"kind": "goomerang.example.MessageV1"},
        )
        if recorded != sum(done):
            raise RuntimeError(f"{path}: {recorded} messages recorded, {sum(done)} handled")
        directory = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if directory is not None:  # and the file a multi-worker scrape merges says the same
            from goomerang_io.metrics.merge import merge_files

            _families, merged = merge_files(directory)
            series = merged.get("goomerang_server_message_received_size_bytes", {})
            in_file = sum(series.get(("goomerang.example.MessageV1",), [0, 0])[:-1])
            shutil.rmtree(directory, ignore_errors=True)
            if in_file != sum(done):
                raise RuntimeError(f"{path}: {in_file} messages in the file, {sum(done)} handled")
    if server is not None:  # drop the fake connections; the listening socket goes with the loop
        for proto in list(getattr(server, "_tcp", ())):
            if proto.transport is not None:
                proto.transport.close()
        await turn()
    result: dict[str, Any] = {"path": path, "n": n, "processed": done, "engine": engine_kind()}
    if CALLS is not None:  # per message: the 2N run minus the N run, over N
        one, two = CALLS.runs
        diff = {k: (two[k] - one[k]) / n for k in two.keys() | one.keys()}
        result["calls"] = {k: v for k, v in sorted(diff.items(), key=lambda kv: -kv[1]) if v}
    return result


def engine_kind() -> str:
    """'compiled' when the engine's connection module is a C extension (mypyc), else 'pure'."""
    import importlib.machinery

    import goomerang_proto.connection as connection

    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return "compiled" if str(connection.__file__).endswith(suffixes) else "pure"


def child_main(path: str, n: int, warmup: int, calls: bool) -> int:
    global CALLS
    CALLS = CallCounter() if calls else None
    fix_environment()
    loop = CaptureLoop()
    asyncio.set_event_loop(loop)
    try:
        result = loop.run_until_complete(run_child(path, n, warmup))
    finally:
        loop.close()
    print(json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------ the parent
def python_binary() -> str:
    """The real interpreter (valgrind must not trace a pyenv shim or a venv launcher script)."""
    return os.path.realpath(sys.executable)


def child_argv(path: str, n: int, warmup: int, calls: bool = False) -> list[str]:
    return [python_binary(), str(Path(__file__).resolve()), "--child", path, "-n", str(n),
            "--warmup", str(warmup), *(["--calls"] if calls else [])]  # fmt: skip


def child_env(compiled: str | None = None) -> dict[str, str]:
    """The child's environment; ``compiled``: the folder of the compiled engine, first."""
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    # the venv's site-packages, as the venv's interpreter would see them
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [compiled, str(HERE.parent), *sys.path[1:], env.get("PYTHONPATH", "")] if p
    )
    return env


def totals(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def measure(
    path: str, n: int, warmup: int, valgrind: str, compiled: str | None = None
) -> dict[str, Any]:
    """Run one path under callgrind; instructions per message from the dumps."""
    with tempfile.TemporaryDirectory(prefix="gmr-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        argv = [valgrind, "--tool=callgrind", "--dump-before=getppid", "--dump-instr=no",
                f"--callgrind-out-file={out}", *child_argv(path, n, warmup)]  # fmt: skip
        env = child_env(compiled)
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"{path}: child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        parts = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
        # dumps: [start-up, warm-up, set-up N] [N] [check N, set-up 2N] [2N] [+ exit file]
        if len(parts) != 4:
            raise RuntimeError(f"{path}: expected 4 dumps (2 measured runs), got {len(parts)}")
        i_n, i_2n = totals(parts[1]), totals(parts[3])
    result.update(i_n=i_n, i_2n=i_2n, per_msg=(i_2n - i_n) / n)
    return result


def direct(
    path: str, n: int, warmup: int, calls: bool, compiled: str | None = None
) -> dict[str, Any]:
    """Run one path without valgrind (checks, and the call counts with ``calls``)."""
    argv = child_argv(path, n, warmup, calls)
    env = child_env(compiled)
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{path}: child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def label(result: dict[str, Any]) -> str:
    """The path's name, with " (compiled)" for a run on the compiled engine."""
    return result["path"] + (" (compiled)" if result["engine"] == "compiled" else "")


def print_compiled(pure: list[dict[str, Any]], compiled: dict[str, dict[str, Any]]) -> None:
    """The pure engine beside the compiled one (``--compiled``), per path."""
    print("pure engine vs mypyc-compiled engine (make compiled), instructions per message")
    print(f"{'path':12} {'pure':>11} {'compiled':>11} {'change':>8}")
    for r in pure:
        c = compiled[r["path"]]["per_msg"]
        change = (c - r["per_msg"]) / r["per_msg"] * 100
        print(f"{r['path']:12} {r['per_msg']:11,.0f} {c:11,.0f} {change:7.1f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=0, help="messages per run (0: per-path default)")
    parser.add_argument(
        "--paths", default=",".join(PATHS), help="comma separated: " + " ".join(PATHS)
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--no-valgrind", action="store_true", help="run the paths, no counts")
    parser.add_argument(
        "--calls", action="store_true", help="count calls per message by function (no valgrind)"
    )
    parser.add_argument("--calls-top", type=int, default=40, help="functions listed with --calls")
    parser.add_argument("--jobs", type=int, default=2, help="paths measured at once")
    parser.add_argument(
        "--compiled",
        type=Path,
        default=None,
        help="also measure the mypyc-compiled engine built in this folder (make compiled)",
    )
    parser.add_argument("--warmup", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        n = args.n or DEFAULT_N[args.child]
        warmup = WARMUP[args.child] if args.warmup < 0 else args.warmup
        return child_main(args.child, n, warmup, args.calls)
    paths = [p for p in args.paths.split(",") if p]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown path(s): {', '.join(unknown)}")

    compiled = str(args.compiled.resolve()) if args.compiled is not None else None
    if compiled is not None and not (Path(compiled) / "goomerang_proto").is_dir():
        parser.error(f"--compiled {args.compiled}: no goomerang_proto there (run make compiled)")
    engines = ["pure", "compiled"] if compiled is not None else ["pure"]

    def job(task: tuple[str, str]) -> dict[str, Any]:
        path, engine = task
        n = args.n or DEFAULT_N[path]
        warmup = WARMUP[path] if args.warmup < 0 else args.warmup
        folder = compiled if engine == "compiled" else None
        if args.no_valgrind or args.calls:
            result = direct(path, n, warmup, args.calls, folder)
        else:
            result = measure(path, n, warmup, valgrind, folder)
        if result["engine"] != engine:
            raise RuntimeError(f"{path}: asked for the {engine} engine, got {result['engine']}")
        return result

    valgrind = shutil.which("valgrind") or ""
    if not (args.no_valgrind or args.calls) and not valgrind:
        print("valgrind not found: install it (Debian: apt-get install valgrind), "
              "or run with --no-valgrind to only check the paths", file=sys.stderr)  # fmt: skip
        return 2
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = list(pool.map(job, [(p, e) for e in engines for p in paths]))
    results = [r for r in runs if r["engine"] == "pure"]
    compiled_results = {r["path"]: r for r in runs if r["engine"] == "compiled"}
    elapsed = time.monotonic() - t0
    if args.calls:
        for r in runs:
            calls = r["calls"]
            py = sum(v for k, v in calls.items() if not k.startswith("C:"))
            c = sum(v for k, v in calls.items() if k.startswith("C:"))
            what = f"{label(r)}: {TITLES[r['path']]}"
            print(f"{what}: {py:.1f} Python calls, {c:.1f} C calls per message")
            for name, v in list(calls.items())[: args.calls_top]:
                print(f"  {v:8.2f}  {name}")
        return 0
    if args.no_valgrind:
        for r in runs:
            print(f"{label(r):24} {TITLES[r['path']]:42} processed {r['processed']}")
        return 0
    floor = next((r["per_msg"] for r in results if r["path"] == "floor"), None)
    print(
        "instructions per message, callgrind, (I(2N) - I(N)) / N; PYTHONHASHSEED=0, "
        f"fixed clock and uuids ({elapsed:.0f} s)"
    )
    print(f"{'path':12} {'what':42} {'N':>6} {'instr/msg':>11} {'x floor':>8}")
    for r in results:
        ratio = f"{r['per_msg'] / floor:7.1f}x" if floor else ""
        print(f"{r['path']:12} {TITLES[r['path']]:42} {r['n']:6} {r['per_msg']:11,.0f} {ratio:>8}")
        if r["path"] == "bcast":
            per = r["per_msg"] / BCAST_TARGETS
            print(f"{'':12} {'  per delivery':42} {'':6} {per:11,.0f}")
    if compiled_results:
        print_compiled(results, compiled_results)
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
