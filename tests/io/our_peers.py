"""Child processes of the runtime and interop tests: our echo server, line reading with deadlines.

Every line read from a child has a deadline; every child is killed if it
outlives its test.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WAIT = 10.0
"""Default bound, in seconds, of every wait on a child process."""


class Child:
    """A child process whose stdout is read line by line, each read with a deadline."""

    def __init__(self, argv: list[str], *, stdin: bool = False) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._buf = b""
        self.lines: list[str] = []

    def readline(self, timeout: float = WAIT) -> str:
        """The next stdout line (without the newline); AssertionError on EOF or timeout."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.argv[:2]}: no line within {timeout} s; {self.info()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"{self.argv[:2]}: output ended; {self.info()}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        text = line.decode()
        self.lines.append(text)
        return text

    def write_line(self, text: str) -> None:
        """Write one line to the child's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = WAIT) -> int:
        """Wait for the exit code (AssertionError, and the child killed, after ``timeout``)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.argv[:2]} still running after {timeout} s") from None

    def terminate(self, timeout: float = WAIT) -> int:
        """SIGTERM, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """Kill the child if it still runs (cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def info(self) -> str:
        """The exit code and stderr tail, for assertion messages."""
        code = self.proc.poll()
        err = b""
        if code is not None and self.proc.stderr is not None:
            err = self.proc.stderr.read() or b""
        return f"exit={code} stdout={self.lines[-3:]} stderr={err[-800:]!r}"


class Server(Child):
    """A server child (refserver or ours) that prints ``READY <host:port> ...`` when listening."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(argv)
        try:
            line = self.readline(20.0)
            words = line.split()
            assert words[:1] == ["READY"], f"unexpected first line {line!r}"
        except BaseException:
            self.kill()
            raise
        self.addr = words[1]
        self.loop = words[2] if len(words) > 2 else "go"


def our_server(runtime: str, max_message_size: int = 1 << 20) -> Server:
    """Start our echo server (see ``our_server.py``) for ``runtime``."""
    argv = [sys.executable, str(HERE / "our_server.py"), runtime, str(max_message_size)]
    return Server(argv)
