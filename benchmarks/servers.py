"""The servers the benchmarks compare: how to start each and how a client speaks to it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable


@dataclass(frozen=True)
class ServerSpec:
    """One server under test.

    ``client_args`` select gmrload's protocol (``--proto tcp``, ``--raw`` or
    goomerang Frames); ``idle_proto``/``idle_path`` tell idle_clients.py how to
    open a connection that the server counts as established.
    """

    name: str
    argv: tuple[str, ...]
    client_args: tuple[str, ...]
    idle_proto: str
    idle_path: str

    @property
    def goomerang(self) -> bool:
        """True for the server that speaks goomerang Frames (broadcast, sync replies)."""
        return not self.client_args


def _peer(name: str, script: str, client_args: tuple[str, ...], proto: str) -> ServerSpec:
    return ServerSpec(name, (PY, str(HERE / "peers" / script)), client_args, proto, "/")


def goomerang(workers: int | None = None) -> ServerSpec:
    """Our server (``python -m goomerang_io serve``), optionally with N worker processes."""
    argv: tuple[str, ...] = (PY, "-m", "goomerang_io", "serve", "--listen", "127.0.0.1:0")
    name = "goomerang"
    if workers is not None:
        argv += ("--workers", str(workers))
        name = f"goomerang w{workers}"
    return ServerSpec(name, argv, (), "ws", "/ws")


GO = "go"


def go_server(bindir: Path) -> ServerSpec:
    """The Go goomerang v0.3.0 server (``refserver`` of tools/goref): echoes MessageV1 like serve.

    Started pinned to one CPU, Go's default GOMAXPROCS is 1 (it reads the
    affinity mask): the per-core figure the issue compares against.
    """
    argv = (str(bindir / "refserver"), "-addr", "127.0.0.1:0")
    return ServerSpec(GO, argv, (), "ws", "/ws")


FLOOR = _peer("floor", "tcp_floor.py", ("--proto", "tcp"), "tcp")
# Informative only (pipelined row): one write per read instead of one per message.
FLOOR_BATCH = ServerSpec(
    "floor-batch", (*FLOOR.argv, "--batch"), FLOOR.client_args, FLOOR.idle_proto, "/"
)
# Informative only (pipelined row): our server recording every Go metric per message.
GOOMERANG_METRICS = ServerSpec(
    "goomerang+metrics", (*goomerang().argv, "--metrics"), (), "ws", "/ws"
)
PEERS = (
    _peer("picows", "picows_echo.py", ("--raw",), "ws"),
    _peer("aiohttp", "aiohttp_echo.py", ("--raw",), "ws"),
    _peer("websockets", "websockets_echo.py", ("--raw",), "ws"),
)
ALL = (FLOOR, goomerang(), *PEERS)
NAMES = (*(s.name for s in ALL), FLOOR_BATCH.name, GOOMERANG_METRICS.name, GO)
