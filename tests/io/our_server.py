"""Our echo server in a child process, the counterpart of the Go ``refserver``.

``python our_server.py RUNTIME [MAX_MESSAGE_SIZE]`` with RUNTIME ``asyncio`` (the
standard loop), ``uvloop``, ``workers2`` (two worker processes under the
supervisor, uvloop, the embedded backplane hub) or ``trio``. It serves what refserver
serves: ``goomerang.example.MessageV1`` is echoed to its sender with the same
payload and headers, a sync one answered with header ``echo: 1`` added; ReplyV1
and BadReplyV1 are registered so they may travel through broadcast and publish.
Prints ``READY <host:port> <loop class>`` once listening; SIGTERM: graceful
shutdown, exit 0.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

RUNTIMES = ("asyncio", "uvloop", "workers2", "trio")


def main(runtime: str, max_message_size: int) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    if runtime == "trio":
        return main_trio(max_message_size)
    from goomerang_io import Server
    from goomerang_io.cli import echo_handler
    from goomerang_io.process.workers import run_workers, serve_until_signal
    from goomerang_proto.pb.goomerang_example_pb2 import BadReplyV1, MessageV1, ReplyV1

    workers = 2 if runtime == "workers2" else 1
    server = Server("127.0.0.1:0", workers=workers, max_message_size=max_message_size)
    server.handle(MessageV1, echo_handler)
    server.register_message(ReplyV1)
    server.register_message(BadReplyV1)

    def ready() -> None:
        try:
            loop = type(asyncio.get_running_loop()).__module__
        except RuntimeError:  # the supervisor (workers2) has no loop: its workers run uvloop
            loop = "supervisor"
        print(f"READY {server.host}:{server.port} {loop}", flush=True)

    if runtime == "workers2":
        return run_workers(server, ready)
    if runtime == "uvloop":
        from goomerang_io.loop import run

        run(serve_until_signal(server, ready))
    elif runtime == "asyncio":
        asyncio.run(serve_until_signal(server, ready))
    else:
        raise SystemExit(f"unknown runtime {runtime!r}; one of {RUNTIMES}")
    return 0


def main_trio(max_message_size: int) -> int:
    import signal

    import trio

    from goomerang_io.cli import echo_handler
    from goomerang_io.trio import Server
    from goomerang_proto.pb.goomerang_example_pb2 import BadReplyV1, MessageV1, ReplyV1

    async def serve() -> None:
        server = Server("127.0.0.1:0", max_message_size=max_message_size)
        server.handle(MessageV1, echo_handler)
        server.register_message(ReplyV1)
        server.register_message(BadReplyV1)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with server:  # shutdown() on exit
                print(f"READY {server.addr} trio", flush=True)
                async for _ in signals:
                    break

    trio.run(serve)
    return 0


if __name__ == "__main__":
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20
    sys.exit(main(sys.argv[1], size))
