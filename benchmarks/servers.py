"""The servers the benchmarks compare: how to start each and how a client speaks to it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
COMPILED_DIR = HERE.parent / "build" / "compiled"
"""Where ``make compiled`` puts the mypyc-compiled engine beside the pure package."""


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


GOOMERANG_COMPILED = "goomerang-compiled"
# Starts serve only once the engine and the server protocol it imported are the compiled
# ones (.so files): a run on the pure build under this name would be a false figure.
_COMPILED_SERVE = (
    "import sys, goomerang_proto.connection as c, goomerang_io.asyncio.server_protocol as p\n"
    "for m in (c, p):\n"
    "    if not m.__file__.endswith('.so'): sys.exit(f'not the compiled build: {m.__file__}')\n"
    "from goomerang_io.cli import main\n"
    "sys.exit(main(['serve', '--listen', '127.0.0.1:0']))"
)


def goomerang_compiled(build: Path = COMPILED_DIR) -> ServerSpec | None:
    """``serve`` on the mypyc-compiled engine (``make compiled``), or None when not built.

    The compiled modules come first on the path, the working tree's pure package
    after them (``PYTHONSAFEPATH``: not the current folder first).
    """
    if not list(build.glob("goomerang_proto/connection*.so")):
        return None
    path = os.pathsep.join((str(build), str(HERE.parent)))
    argv = ("env", "PYTHONSAFEPATH=1", f"PYTHONPATH={path}", PY, "-c", _COMPILED_SERVE)
    return ServerSpec(GOOMERANG_COMPILED, argv, (), "ws", "/ws")


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
NAMES = (
    *(s.name for s in ALL),
    FLOOR_BATCH.name,
    GOOMERANG_METRICS.name,
    GOOMERANG_COMPILED,
    GO,
)
