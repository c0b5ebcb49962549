"""A handler that closes its own client, or shuts its own server down (asyncio runtime).

``close()`` and ``shutdown()`` wait for running handlers; the handler that
calls them cannot end before they do, so it is not waited for (nor cancelled):
the call returns once the close handshake is over, well within the deadlines,
and the endpoint ends CLOSED with no error. Before, the client's handler
cancelled itself (CancelledError out of ``close()``, the client stuck in
CLOSING, the server still holding the connection) and the server's waited
``shutdown_timeout`` for itself, then cancelled itself the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from util import echo, msg, new_client, new_server, poll_until, run, running

from goomerang_proto import Message, Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1

SLOW = 5.0  # close_timeout / shutdown_timeout: waiting for itself would take this long


def handler_calling(
    call: Callable[[], Awaitable[None]], outcome: asyncio.Future[tuple[str, float]]
) -> Callable[[Any, Message[Any]], Awaitable[None]]:
    """A handler that awaits ``call()`` and sets ``outcome`` to ("returned" or the error's
    repr, the seconds it took); the error, if any, goes on up."""

    async def handler(_sender: Any, _message: Message[Any]) -> None:
        t0 = time.monotonic()
        try:
            await call()
            outcome.set_result(("returned", time.monotonic() - t0))
        except BaseException as exc:
            outcome.set_result((repr(exc), time.monotonic() - t0))
            raise

    return handler


def test_a_client_handler_that_closes_its_client() -> None:
    async def main() -> None:
        server = new_server()
        server.handle(MessageV1, echo)
        async with running(server):
            errors: list[BaseException] = []
            client = new_client(server, close_timeout=SLOW, on_error=[errors.append])
            outcome: asyncio.Future[tuple[str, float]] = asyncio.get_running_loop().create_future()

            client.handle(ReplyV1, handler_calling(client.close, outcome))
            await client.connect()
            await client.send(msg("close me"))
            what, seconds = await asyncio.wait_for(outcome, 3 * SLOW)
            assert what == "returned"
            assert seconds < SLOW  # the handshake, not close_timeout
            assert client.status is Status.CLOSED
            assert errors == []
            await poll_until(lambda: server.connections() == 0, SLOW)

    run(main())


def test_a_server_handler_that_shuts_its_server_down() -> None:
    async def main() -> None:
        server = new_server(shutdown_timeout=SLOW)
        outcome: asyncio.Future[tuple[str, float]] = asyncio.get_running_loop().create_future()

        server.handle(MessageV1, handler_calling(server.shutdown, outcome))
        await server.start()
        errors: list[BaseException] = []
        client = new_client(server, on_error=[errors.append])
        closed = asyncio.Event()
        client.on_status_change(lambda s: closed.set() if s is Status.CLOSED else None)
        await client.connect()
        await client.send(msg("stop"))
        what, seconds = await asyncio.wait_for(outcome, 3 * SLOW)
        assert what == "returned"
        assert seconds < SLOW  # not shutdown_timeout spent waiting for itself
        assert server.status is Status.CLOSED
        await asyncio.wait_for(closed.wait(), SLOW)
        assert client.close_code == 1000
        assert errors == []

    run(main())


def test_replies_after_the_peer_closed_are_not_handler_errors() -> None:
    """A handler whose reply comes after the client closed cleanly: the send is refused
    (the connection is gone), and that is not reported as a HandlerError per handler
    (20 clean closes gave 40 before; the blocking client already filtered them)."""

    async def main() -> None:
        errors: list[BaseException] = []
        server = new_server(on_error=[errors.append])
        release = asyncio.Event()
        finished: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def late_echo(sender: Any, message: Message[Any]) -> None:
            await release.wait()
            try:
                await sender.send(message)
                finished.set_result("sent")
            except BaseException as exc:
                finished.set_result(type(exc).__name__)
                raise

        server.handle(MessageV1, late_echo)
        async with running(server):
            client = new_client(server)
            await client.connect()
            await client.send(msg("late"))
            await poll_until(lambda: server.connections() == 1)
            await client.close()
            await poll_until(lambda: server.connections() == 0, SLOW)
            release.set()
            assert await asyncio.wait_for(finished, SLOW) in ("NotRunning", "Closing")
            assert errors == []

    run(main())
