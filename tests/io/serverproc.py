"""An echo Server in a child process, for tests that measure its memory (RSS).

Run as a script: ``python serverproc.py '{"max_connections": 50}'`` prints its
port on stdout, then answers ``stats`` lines on stdin with a JSON line
(errors, connections), answers ``wait-connections N`` with the same line once
N WebSocket connections are open (woken by the server's connect/disconnect
hooks; ``"timeout": 1`` added after 10 s), and shuts down when stdin closes.
``ServerProcess`` drives it from a test.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _serve(options: dict[str, Any]) -> None:
    sys.path.insert(0, str(ROOT))
    from goomerang_io import Server
    from goomerang_io.loop import run
    from goomerang_proto import Message
    from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

    errors: list[str] = []

    def echo(sender: Any, message: Message[Any]) -> Any:
        return sender.send(Message(ReplyV1(message=message.payload.message), message.headers))

    async def main() -> None:
        server = Server("127.0.0.1:0", **options)
        server.handle(MessageV1, echo)
        server.register_message(ReplyV1)
        server.on_error(lambda exc: errors.append(type(exc).__name__))
        await server.start()
        print(server.port, flush=True)
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        changed = asyncio.Event()
        server.add_hook("on_connect", lambda _s: changed.set())
        server.add_hook("on_disconnect", lambda _s: changed.set())

        def stats() -> dict[str, int]:
            return {"errors": len(errors), "connections": server.connections()}

        async def wait_connections(n: int) -> None:
            out = stats()
            try:
                async with asyncio.timeout(10.0):
                    while server.connections() != n:
                        changed.clear()
                        await changed.wait()
                out = stats()
            except TimeoutError:
                out = {**stats(), "timeout": 1}
            print(json.dumps(out), flush=True)

        def stdin_reader() -> None:
            for line in sys.stdin:
                words = line.split()
                if words == ["stats"]:
                    loop.call_soon_threadsafe(lambda: print(json.dumps(stats()), flush=True))
                elif len(words) == 2 and words[0] == "wait-connections":
                    n = int(words[1])
                    loop.call_soon_threadsafe(lambda n=n: loop.create_task(wait_connections(n)))
            loop.call_soon_threadsafe(done.set)

        threading.Thread(target=stdin_reader, daemon=True).start()
        await done.wait()
        await server.shutdown(timeout=2.0)

    run(main())


class ServerProcess:
    """The echo server in a child process: ``addr``, ``rss_kb()``, ``stats()``."""

    def __init__(self, **options: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError(f"server process did not start: {line!r}")
        self.port = int(line)
        self.addr = f"127.0.0.1:{self.port}"

    def rss_kb(self) -> int:
        """The child's resident set size (VmRSS), in kB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line")

    def stats(self) -> dict[str, int]:
        """Errors reported and open connections, from the child."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        result: dict[str, int] = json.loads(self.proc.stdout.readline())
        return result

    def wait_connections(self, n: int) -> dict[str, int]:
        """Block until the child has ``n`` open connections (10 s at most); its stats then."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"wait-connections {n}\n")
        self.proc.stdin.flush()
        result: dict[str, int] = json.loads(self.proc.stdout.readline())
        return result

    def stop(self) -> None:
        """Shut the server down (kill it if it does not stop in 10 s)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
