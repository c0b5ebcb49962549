"""Tables keyed by what a peer chooses stay bounded (issue 11): metric topic labels."""

from __future__ import annotations

import pytest
from misbehave_peers import SERVER_RUNTIMES
from prometheus_client import CollectorRegistry

from goomerang_io.metrics import ServerMetrics
from goomerang_io.metrics.recorder import MAX_TOPIC_LABELS, OTHER_TOPIC


def _topic_labels(registry: CollectorRegistry) -> set[str]:
    return {
        sample.labels["topic"]
        for family in registry.collect()
        for sample in family.samples
        if "topic" in sample.labels
    }


def test_a_peer_cannot_grow_the_topic_label_set() -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry=registry)
    for i in range(MAX_TOPIC_LABELS + 500):
        metrics.subscribed(f"t{i}")
        metrics.published(f"t{i}", "goomerang.example.MessageV1")
    metrics.flush()
    labels = _topic_labels(registry)
    assert len(labels) == MAX_TOPIC_LABELS + 1
    assert OTHER_TOPIC in labels and "t0" in labels
    assert f"t{MAX_TOPIC_LABELS}" not in labels
    assert metrics.topic_label("t1") == "t1"


def _check_refusals(errors: list[BaseException], subscribed: list[str]) -> None:
    assert len(errors) == 5
    assert all("max_subscriptions=5" in str(e) for e in errors)
    assert subscribed == [f"t{i}" for i in range(5)]


@pytest.mark.parametrize("runtime", SERVER_RUNTIMES)
def test_subscriptions_per_connection_are_bounded(runtime: str) -> None:
    """A client subscribing to ever new topics is refused past max_subscriptions.

    A server's limit, so over ``SERVER_RUNTIMES`` (asyncio, uvloop, trio): there is
    no blocking server (goomerang_io.sync holds only a client).
    """
    if runtime == "trio":
        _trio_subscriptions_bounded()
        return
    import asyncio

    from goomerang_io import Client, Server

    async def main() -> None:
        errors: list[BaseException] = []
        refused = asyncio.Event()

        def on_error(exc: BaseException) -> None:
            errors.append(exc)
            if len(errors) == 5:
                refused.set()

        server = Server("127.0.0.1:0", max_subscriptions=5, ping_interval=None)
        server.on_error(on_error)
        await server.start()
        client = Client(server.addr, heartbeat_interval=None)
        await client.connect()
        try:
            for i in range(10):
                await client.subscribe(f"t{i}")
            await client.subscribe("t0")  # already held: not a new one
            async with asyncio.timeout(5.0):
                await refused.wait()
            topics = [f"t{i}" for i in range(10)]
            _check_refusals(errors, [t for t in topics if server.topics.subscribers(t)])
        finally:
            await client.close()
            await server.shutdown()

    if runtime == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())


def _trio_subscriptions_bounded() -> None:
    """The case above on goomerang_io.trio's Server and Client."""
    import trio

    from goomerang_io.trio import Client, Server

    async def main() -> None:
        errors: list[BaseException] = []
        refused = trio.Event()

        def on_error(exc: BaseException) -> None:
            errors.append(exc)
            if len(errors) == 5:
                refused.set()

        server = Server("127.0.0.1:0", max_subscriptions=5, ping_interval=None)
        server.on_error(on_error)
        async with server:
            async with Client(server.addr, heartbeat_interval=None) as client:
                for i in range(10):
                    await client.subscribe(f"t{i}")
                await client.subscribe("t0")  # already held: not a new one
                with trio.fail_after(5.0):
                    await refused.wait()
                topics = [f"t{i}" for i in range(10)]
                _check_refusals(errors, [t for t in topics if server.topics.subscribers(t)])

    trio.run(main)
