"""The peer under test: a URL, or a command the runner starts, stops and restarts.

A command may use the placeholders ``{addr}`` (``127.0.0.1:PORT``),
``{host}``, ``{port}`` and ``{url}`` (``ws://127.0.0.1:PORT/ws``): the runner
picks a free loopback port for each start, substitutes it, and waits (at most
``start_timeout`` seconds) until the port accepts connections. The process's
output goes to a log file whose tail is shown when something goes wrong.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from urllib.parse import urlsplit


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def parse_url(url: str) -> tuple[str, int, str]:
    """``ws://HOST:PORT/PATH`` -> (host, port, path). ValueError for other schemes or no port."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None or parts.port is None:
        raise ValueError(f"expected ws://HOST:PORT/PATH, got {url!r}")
    return parts.hostname, parts.port, parts.path or "/ws"


class Target:
    """Where the server under test listens, and (command mode) its process."""

    def __init__(
        self,
        url: str | None = None,
        command: Sequence[str] | None = None,
        *,
        start_timeout: float = 15.0,
    ) -> None:
        if (url is None) == (command is None):
            raise ValueError("give either a URL or a command")
        self.command = list(command) if command is not None else None
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log = tempfile.NamedTemporaryFile(prefix="goomerang-conformance-", suffix=".log")
        if url is not None:
            self.host, self.port, self.path = parse_url(url)
        else:
            self.host, self.port, self.path = "127.0.0.1", 0, "/ws"

    @property
    def managed(self) -> bool:
        """True when the runner starts the server (restart and shutdown cases apply)."""
        return self.command is not None

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/ws`` of the running server."""
        return f"ws://{self.host}:{self.port}{self.path}"

    @property
    def addr(self) -> str:
        """``HOST:PORT`` of the running server."""
        return f"{self.host}:{self.port}"

    def describe(self) -> str:
        """The target as the report names it."""
        return " ".join(self.command) if self.command is not None else self.url

    # ----------------------------------------------------------- process
    def start(self) -> None:
        """Start the command on a fresh port and wait until it accepts connections."""
        if self.command is None:
            return
        self.stop()
        self.port = free_port(self.host)
        values = {"addr": self.addr, "host": self.host, "port": str(self.port), "url": self.url}
        argv = [arg.format(**values) for arg in self.command]
        self._log.write(f"--- start {self.starts + 1}: {' '.join(argv)}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.starts += 1
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode} before listening:\n"
                    + self.log_tail()
                )
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(0.02)  # wakes at once if it exits
        raise RuntimeError(
            f"server did not listen within {self.start_timeout} s:\n" + self.log_tail()
        )

    def restart(self) -> None:
        """Stop (kill) and start again: a fresh server for the next case."""
        self.start()

    def terminate(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM the server; return (exit code or None if still running, seconds waited)."""
        proc = self.process
        if proc is None:
            return None, 0.0
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - start

    def stop(self) -> None:
        """Kill the server if it runs (the next case starts a fresh one)."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self.process = None

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the server process used so far (Linux /proc), or None."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return None
        try:
            with open(f"/proc/{proc.pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines the server printed."""
        self._log.flush()
        with open(self._log.name, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Stop the server and drop the log."""
        self.stop()
        self._log.close()
