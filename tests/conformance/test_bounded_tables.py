"""Tables keyed by what a peer chooses stay bounded (issue 11): metric topic labels."""

from __future__ import annotations

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


def test_subscriptions_per_connection_are_bounded() -> None:
    """A client subscribing to ever new topics is refused past max_subscriptions."""
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
            assert all("max_subscriptions=5" in str(e) for e in errors)
            assert [t for t in (f"t{i}" for i in range(10)) if server.topics.subscribers(t)] == [
                f"t{i}" for i in range(5)
            ]
        finally:
            await client.close()
            await server.shutdown()

    asyncio.run(main())
