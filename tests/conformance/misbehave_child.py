"""A goomerang Server in a child process, for the misbehaving-peer suite (RSS is per process).

Run as ``python misbehave_child.py CONFIG_JSON``; CONFIG is
``{"runtime": "asyncio"|"uvloop"|"trio", "options": {...}, "tls": [cert, key] | null,
"auth_delay": seconds | null}`` (``tls`` and ``auth_delay`` on asyncio and uvloop only:
the trio server has neither). It prints its port, then answers each
``stats`` line on stdin with one JSON line ``{"errors": [...], "connections":
n, "pushed": n}`` and exits when stdin closes.

Handlers (kind ``goomerang.example.MessageV1``): the README's plain echo
(``sender.send(ReplyV1(...))`` without await); a message ``push:N:SIZE`` makes
an async handler ``await sender.send`` N replies of SIZE bytes (``pushed``
counts those that returned). A new runtime joins by handling one more
``runtime`` value here (see ``RUNTIMES`` in misbehave_peers.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("GMR_ROOT", Path(__file__).resolve().parents[2]))


def main(config: dict[str, Any]) -> None:
    sys.path.insert(0, str(ROOT))
    from goomerang_io import Server
    from goomerang_proto import Message
    from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

    errors: list[str] = []
    pushed = [0]

    async def push(sender: Any, n: int, size: int) -> None:
        for _ in range(n):
            await sender.send(Message(ReplyV1(message="p" * size)))
            pushed[0] += 1

    async def hold() -> None:  # a handler that never ends: its message stays held
        if config["runtime"] == "trio":
            import trio

            await trio.sleep_forever()
        else:
            await asyncio.Event().wait()

    def handler(sender: Any, message: Message[Any]) -> Any:
        text = message.payload.message
        if text == "hold":
            return hold()
        if text.startswith("push:"):
            _, n, size = text.split(":")
            return push(sender, int(n), int(size))
        sender.send(Message(ReplyV1(message=text), message.headers))
        return None

    async def authenticate(_request: Any) -> Any:
        await asyncio.sleep(float(config["auth_delay"]))
        return "late"

    async def serve() -> None:
        kwargs: dict[str, Any] = dict(config.get("options", {}))
        if config.get("tls"):
            cert, key = config["tls"]
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            kwargs["tls"] = ctx
        if config.get("auth_delay") is not None:
            kwargs["authenticate"] = authenticate
        server = Server("127.0.0.1:0", **kwargs)
        server.handle(MessageV1, handler)
        server.register_message(ReplyV1)
        server.on_error(lambda exc: errors.append(f"{type(exc).__name__}: {exc}"[:200]))
        await server.start()
        print(server.port, flush=True)
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def stats() -> None:
            out = {"errors": errors, "connections": server.connections(), "pushed": pushed[0]}
            print(json.dumps(out), flush=True)

        def stdin_reader() -> None:
            for line in sys.stdin:
                if line.strip() == "stats":
                    loop.call_soon_threadsafe(stats)
            loop.call_soon_threadsafe(done.set)

        threading.Thread(target=stdin_reader, daemon=True).start()
        await done.wait()
        await server.shutdown(timeout=1.0)

    runtime = config["runtime"]
    if runtime == "trio":
        serve_trio(config, handler, errors, pushed)
    elif runtime == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve())
    elif runtime == "asyncio":
        with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
            runner.run(serve())
    else:
        raise SystemExit(f"unknown runtime {runtime!r}")


def serve_trio(config: dict[str, Any], handler: Any, errors: list[str], pushed: list[int]) -> None:
    """The same server on goomerang_io.trio (the handler's ``push`` coroutine runs on trio)."""
    import trio

    from goomerang_io.trio import Server
    from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

    if config.get("tls") or config.get("auth_delay") is not None:
        raise SystemExit("the trio server has no TLS and no authenticate")

    async def serve() -> None:
        server = Server("127.0.0.1:0", **config.get("options", {}))
        server.handle(MessageV1, handler)
        server.register_message(ReplyV1)
        server.on_error(lambda exc: errors.append(f"{type(exc).__name__}: {exc}"[:200]))
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def stats() -> None:
            out = {"errors": errors, "connections": server.connections(), "pushed": pushed[0]}
            print(json.dumps(out), flush=True)

        def stdin_reader() -> None:
            for line in sys.stdin:
                if line.strip() == "stats":
                    trio.from_thread.run_sync(stats, trio_token=token)
            trio.from_thread.run_sync(done.set, trio_token=token)

        async with server:
            print(server.port, flush=True)
            threading.Thread(target=stdin_reader, daemon=True).start()
            await done.wait()
            await server.shutdown(timeout=1.0)

    trio.run(serve)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
