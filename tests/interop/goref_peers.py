"""The Go peer (refserver, refclient) as child processes of the interop tests.

Every line read from a child has a deadline (``our_peers.Child``). ``GOREF_DIR``
names the folder that holds ``refserver`` and ``refclient`` (``make interop``
builds them and sets it); when it is unset or broken the tests fail, never skip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from go_peer import goref_folder
from our_peers import Child, Server, our_server

HERE = Path(__file__).resolve().parent
__all__ = ["Child", "Server", "go_server", "goref_dir", "our_server", "refclient"]


def goref_dir() -> Path:
    """The folder of the Go binaries (``GOREF_DIR``); fails the test when missing or broken."""
    return goref_folder()


def go_server(*args: str) -> Server:
    """Start the Go refserver on an ephemeral loopback port."""
    return Server([str(goref_dir() / "refserver"), "-addr", "127.0.0.1:0", *args])


def refclient_argv(mode: str, addr: str, *args: str) -> list[str]:
    """The argv of one refclient run (``-wait`` bounds its own waits)."""
    return [str(goref_dir() / "refclient"), mode, "-addr", addr, "-wait", "8s", *args]


def refclient(mode: str, addr: str, *args: str, timeout: float = 30.0) -> dict[str, Any]:
    """Run the Go client once; its JSON result (AssertionError when it failed or hung)."""
    child = Child(refclient_argv(mode, addr, *args))
    try:
        line = child.readline(timeout)
        code = child.wait(timeout)
    finally:
        child.kill()
    assert code == 0, f"refclient {mode} exited {code}: {line} {child.info()}"
    result: dict[str, Any] = json.loads(line)
    return result
