"""Order (issue 16, input 7): what the README says about handlers and max_concurrency holds."""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path
from typing import Any

from util import Inbox, connected, msg, new_client, new_server, run, running

from goomerang_io import Message, Sender
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def relay_server(order: Inbox, **kwargs: Any) -> Any:
    """Async handlers that await (a random, bounded number of loop turns) before publishing."""
    server = new_server(**kwargs)
    rng = random.Random(16)

    async def handler(sender: Sender, message: Message[Any]) -> None:
        for _ in range(rng.randrange(0, 20)):
            await asyncio.sleep(0)  # yield to the loop: other handlers may run meanwhile
        order.put(int(message.payload.message))

    server.handle(MessageV1, handler)
    return server


def test_max_concurrency_1_keeps_arrival_order() -> None:
    async def main() -> None:
        order = Inbox()
        async with running(relay_server(order, max_concurrency=1)) as server:
            async with connected(new_client(server)) as client:
                for i in range(20):
                    await client.send(msg(str(i)))
                await order.wait_count(20)
        assert order.items == list(range(20))

    run(main())


def test_by_default_async_handlers_of_one_connection_run_concurrently() -> None:
    """The first handler finishes only because the second one runs while it waits."""

    async def main() -> None:
        second_started = asyncio.Event()
        finished = Inbox()
        server = new_server()

        async def handler(sender: Sender, message: Message[Any]) -> None:
            if message.payload.message == "first":
                async with asyncio.timeout(5):
                    await second_started.wait()
            else:
                second_started.set()
            finished.put(message.payload.message)

        server.handle(MessageV1, handler)
        async with running(server):
            async with connected(new_client(server)) as client:
                await client.send(msg("first"))
                await client.send(msg("second"))
                await finished.wait_count(2)
        assert finished.items == ["second", "first"]

    run(main())


def test_the_readme_states_the_order_rule_and_lists_max_concurrency() -> None:
    assert re.search(r"\| Handler concurrency \| `max_concurrency` \| 10", README)
    assert "async handlers of one connection run" in README
    assert "max_concurrency=1" in README
