"""Graceful stop (issue 16, inputs 4, 16): handlers finish, replies go out, the rest is cancelled.

``server.shutdown()`` stops reading, lets running handlers finish within
``shutdown_timeout`` (their replies reach the clients), cancels what still
runs, then closes every connection with 1000. ``client.close()`` does the
same for the client's handlers within ``close_timeout``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from util import WAIT, Inbox, connected, msg, new_client, new_server, reply, run, running

from goomerang_io import Message, Sender
from goomerang_proto import Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1


def test_a_reply_in_flight_at_shutdown_reaches_the_client_input_4() -> None:
    async def main() -> None:
        entered, handled = Inbox(), Inbox()
        release = asyncio.Event()
        server_statuses = Inbox()
        server = new_server(on_status_change=server_statuses)

        async def slow(sender: Sender, message: Message[Any]) -> None:
            handled.put(message.payload.message)
            entered.put(message)
            await release.wait()  # "takes 1.5 s": held until shutdown is under way
            await sender.send(reply("answer"))

        server.handle(MessageV1, slow)
        await server.start()
        client = new_client(server)
        client.register_message(ReplyV1)
        await client.connect()
        request = asyncio.ensure_future(client.send_sync(msg("question"), timeout=WAIT))
        await entered.wait_count(1)
        shutdown = asyncio.ensure_future(server.shutdown())
        await server_statuses.wait_for(lambda s: s is Status.CLOSING)
        await client.send(msg("too late"))  # not read any more: never handled
        release.set()
        got = await asyncio.wait_for(request, WAIT)
        assert got.payload.message == "answer"
        await asyncio.wait_for(shutdown, WAIT)
        assert server.status is Status.CLOSED
        assert handled.items == ["question"]
        if client.status is Status.RUNNING:
            await client.close()
        assert client.close_code == 1000

    run(main())


def test_handlers_do_not_outlive_shutdown_input_16() -> None:
    async def main() -> None:
        entered, ended = Inbox(), Inbox()
        server = new_server(shutdown_timeout=0.5)

        async def endless(sender: Sender, message: Message[Any]) -> None:
            entered.put(message)
            try:
                await asyncio.Event().wait()  # never set: only cancellation ends it
            finally:
                ended.put("cancelled" if asyncio.current_task().cancelling() else "done")  # type: ignore[union-attr]

        server.handle(MessageV1, endless)
        await server.start()
        async with connected(new_client(server)) as client:
            await client.send(msg())
            await entered.wait_count(1)
            t0 = time.monotonic()
            await asyncio.wait_for(server.shutdown(), WAIT)
            elapsed = time.monotonic() - t0
            assert ended.items == ["cancelled"]  # before shutdown returned
            assert 0.4 <= elapsed < WAIT

    run(main())


def test_client_handlers_do_not_outlive_close_input_16() -> None:
    async def main() -> None:
        entered, ended = Inbox(), Inbox()
        server = new_server()
        server.handle(MessageV1, lambda s, m: s.send(m))  # echo the message back as is
        async with running(server):
            client = new_client(server, close_timeout=0.5)

            async def endless(sender: Sender, message: Message[Any]) -> None:
                entered.put(message)
                try:
                    await asyncio.Event().wait()  # never set: only cancellation ends it
                finally:
                    ended.put("ended")

            client.handle(MessageV1, endless)
            await client.connect()
            await client.send(msg())
            await entered.wait_count(1)
            await asyncio.wait_for(client.close(), WAIT)
            assert ended.items == ["ended"]
            assert client.status is Status.CLOSED

    run(main())


def test_client_close_lets_a_running_handler_send() -> None:
    async def main() -> None:
        server_got = Inbox()
        server = new_server()

        def on_server(sender: Sender, message: Message[Any]) -> Any:
            server_got.put(message.payload.message)
            if message.payload.message == "start":
                return sender.send(msg("work"))
            return None

        server.handle(MessageV1, on_server)
        async with running(server):
            entered = Inbox()
            release = asyncio.Event()
            client = new_client(server)

            async def worker(sender: Sender, message: Message[Any]) -> None:
                entered.put(message)
                await release.wait()
                await sender.send(msg("result"))

            client.handle(MessageV1, worker)
            await client.connect()
            await client.send(msg("start"))
            await entered.wait_count(1)
            closing = asyncio.ensure_future(client.close())
            await poll_status(client, Status.CLOSING)
            release.set()
            await asyncio.wait_for(closing, WAIT)
            await server_got.wait_for(lambda m: m == "result")

    run(main())


async def poll_status(client: Any, status: Status) -> None:
    statuses = Inbox()
    client.add_hook("on_status_change", statuses)
    if client.status is not status:
        await statuses.wait_for(lambda s: s is status)
