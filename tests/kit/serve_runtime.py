"""The profile server (what ``goomerang serve`` runs) on a chosen server runtime.

``python tests/kit/serve_runtime.py RUNTIME ADDR``: ``asyncio`` (the standard
loop), ``uvloop`` or ``trio``; echo of MessageV1 async and sync (the sync reply
with ``echo: 1``, :func:`goomerang_io.cli.echo_handler`), broadcast and
publish/subscribe, graceful shutdown on SIGTERM/SIGINT. There is no blocking
server (goomerang_io.sync holds only a client). ``goomerang serve`` itself
(the CLI, uvloop) is checked by test_goomerang_serve_passes_every_case.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from goomerang_io.cli import echo_handler
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

RUNTIMES = ("asyncio", "uvloop", "trio")


async def serve_asyncio(addr: str) -> None:
    from goomerang_io import Server
    from goomerang_io.process.workers import serve_until_signal

    server = Server(addr)
    server.handle(MessageV1, echo_handler)
    await serve_until_signal(server)


def serve_trio(addr: str) -> None:
    import trio

    from goomerang_io.trio import Server

    async def main() -> None:
        server = Server(addr)
        server.handle(MessageV1, echo_handler)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve)
                async for _sig in signals:
                    await server.shutdown()
                    return

    trio.run(main)


def main(runtime: str, addr: str) -> None:
    if runtime == "trio":
        serve_trio(addr)
    elif runtime == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve_asyncio(addr))
    elif runtime == "asyncio":
        asyncio.run(serve_asyncio(addr))
    else:
        raise SystemExit(f"unknown runtime {runtime!r}; one of {RUNTIMES}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
