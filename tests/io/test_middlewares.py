"""panic, logging and metrics middlewares: order, sync and async handlers, records, metrics."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Coroutine
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from goomerang_io.metrics import ClientMetrics, ServerMetrics
from goomerang_io.middlewares import logging_middleware, metrics_middleware, panic_middleware
from goomerang_proto.message import Message
from goomerang_proto.pb import goomerang_example_pb2 as example_pb2
from goomerang_proto.router import Router

K = "goomerang.example.MessageV1"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def msg(**kw: Any) -> Message[Any]:
    kw.setdefault("payload_size", 7)
    return Message(example_pb2.MessageV1(message="hello"), {"k": "v"}, **kw)


class FakeSender:
    """Stands in for the endpoint's sender (``await sender.send(message)``)."""

    def __init__(self) -> None:
        self.sent: list[Message[Any]] = []

    async def send(self, message: Message[Any]) -> None:
        self.sent.append(message)


async def invoke(handler: Any, sender: Any, message: Message[Any]) -> None:
    result = handler(sender, message)
    if inspect.isawaitable(result):
        await result


def test_order_is_registration_order_with_sync_and_async_handlers() -> None:
    trace: list[str] = []

    def tracer(name: str) -> Any:
        def mw(next_handler: Any) -> Any:
            async def h(sender: Any, message: Message[Any]) -> None:
                trace.append(f"{name}>")
                r = next_handler(sender, message)
                if asyncio.iscoroutine(r):
                    await r
                trace.append(f"<{name}")

            return h

        return mw

    reports: list[BaseException] = []
    for is_async in (False, True):
        trace.clear()
        router = Router()
        router.middleware(tracer("a"))
        router.middleware(panic_middleware(lambda e, m: reports.append(e)))
        router.middleware(logging_middleware())
        router.middleware(metrics_middleware(ServerMetrics(registry=CollectorRegistry())))
        router.middleware(tracer("b"))

        if is_async:

            async def handler(sender: Any, message: Message[Any]) -> None:
                await asyncio.sleep(0)
                trace.append("handler")
                await sender.send(message)

        else:

            def handler(sender: Any, message: Message[Any]) -> None:  # type: ignore[misc]
                trace.append("handler")

        router.handle(example_pb2.MessageV1, handler)
        router.freeze()
        chain = router.resolve(K)
        assert chain is not None
        run(invoke(chain, FakeSender(), msg()))
        assert trace == ["a>", "b>", "handler", "<b", "<a"], is_async
    assert reports == []


def test_panic_catcher_reports_and_keeps_going() -> None:
    reports: list[tuple[BaseException, Message[Any]]] = []
    calls = 0

    def handler(sender: Any, message: Message[Any]) -> None:
        nonlocal calls
        calls += 1
        if message.headers.get("boom"):
            raise RuntimeError(f"bad {calls}")

    chain = panic_middleware(lambda e, m: reports.append((e, m)))(handler)

    async def scenario() -> None:
        sender = FakeSender()
        bad = msg()
        bad.headers["boom"] = "1"
        await invoke(chain, sender, bad)  # swallowed
        await invoke(chain, sender, msg())  # the chain still works
        await invoke(chain, sender, bad)

    run(scenario())
    assert calls == 3
    assert [str(e) for e, _ in reports] == ["bad 1", "bad 3"]
    assert all(isinstance(e, RuntimeError) and m.headers["boom"] == "1" for e, m in reports)


def test_panic_catcher_async_handler_and_async_reporter() -> None:
    seen: list[str] = []

    async def handler(sender: Any, message: Message[Any]) -> None:
        await asyncio.sleep(0)
        raise ValueError("async boom")

    async def report(exc: BaseException, message: Message[Any]) -> None:
        await asyncio.sleep(0)
        seen.append(f"{type(exc).__name__}: {exc} ({message.kind})")

    run(invoke(panic_middleware(report)(handler), FakeSender(), msg()))
    assert seen == [f"ValueError: async boom ({K})"]


def test_panic_catcher_lets_cancellation_through() -> None:
    reports: list[BaseException] = []

    async def handler(sender: Any, message: Message[Any]) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        run(invoke(panic_middleware(lambda e, m: reports.append(e))(handler), FakeSender(), msg()))
    assert reports == []


def test_logging_record_fields(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.goomerang.mw")

    async def handler(sender: Any, message: Message[Any]) -> None:
        await asyncio.sleep(0)

    chain = logging_middleware(logger, level=logging.WARNING)(handler)
    with caplog.at_level(logging.WARNING, logger="test.goomerang.mw"):
        run(invoke(chain, FakeSender(), msg(is_sync=True, uuid="u-1", payload_size=42)))
    records = [r for r in caplog.records if r.name == "test.goomerang.mw"]
    assert len(records) == 1
    r = records[0]
    assert r.levelno == logging.WARNING
    assert r.getMessage() == "message processed"
    assert r.kind == K  # type: ignore[attr-defined]
    assert r.headers == {"k": "v"}  # type: ignore[attr-defined]
    assert r.payload_size == 42  # type: ignore[attr-defined]
    assert r.is_sync is True  # type: ignore[attr-defined]
    assert r.uuid == "u-1"  # type: ignore[attr-defined]
    assert isinstance(r.processing_seconds, float)  # type: ignore[attr-defined]
    assert 0 <= r.processing_seconds < 10  # type: ignore[attr-defined]


def test_logging_default_logger_sync_handler_and_failure(caplog: pytest.LogCaptureFixture) -> None:
    def ok(sender: Any, message: Message[Any]) -> None:
        return None

    def bad(sender: Any, message: Message[Any]) -> None:
        raise KeyError("nope")

    with caplog.at_level(logging.INFO, logger="goomerang.messages"):
        run(invoke(logging_middleware()(ok), FakeSender(), msg()))
        with pytest.raises(KeyError):
            run(invoke(logging_middleware()(bad), FakeSender(), msg()))
    records = [r for r in caplog.records if r.name == "goomerang.messages"]
    assert [r.getMessage() for r in records] == ["message processed", "message failed"]
    assert records[1].exc_info is not None and records[1].exc_info[0] is KeyError
    assert records[1].kind == K  # type: ignore[attr-defined]


def test_logging_disabled_level_logs_nothing_but_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[int] = []
    chain = logging_middleware(level=logging.DEBUG)(lambda s, m: ran.append(1))
    with caplog.at_level(logging.INFO, logger="goomerang.messages"):
        run(invoke(chain, FakeSender(), msg()))
    assert ran == [1]
    assert [r for r in caplog.records if r.name == "goomerang.messages"] == []


@pytest.mark.parametrize("cls", [ServerMetrics, ClientMetrics])
def test_metrics_middleware_records_received_and_processing(cls: type[Any]) -> None:
    reg = CollectorRegistry()
    m = cls(registry=reg)
    p = "goomerang_server_" if cls is ServerMetrics else "goomerang_client_"

    async def scenario() -> None:
        started, release = asyncio.Event(), asyncio.Event()

        async def handler(sender: Any, message: Message[Any]) -> None:
            started.set()
            await release.wait()

        chain = metrics_middleware(m)(handler)
        # created 2 s ago by the sender's clock
        created = time.time_ns() - 2_000_000_000
        task = asyncio.ensure_future(invoke(chain, FakeSender(), msg(creation_ns=created)))
        await started.wait()
        # received is recorded before the handler finishes, processing after
        assert reg.get_sample_value(p + "message_received_size_bytes_count", {"kind": K}) == 1
        assert (
            reg.get_sample_value(p + "message_processing_duration_seconds_count", {"kind": K})
            is None
        )
        release.set()
        await task

    run(scenario())
    v = reg.get_sample_value
    assert v(p + "message_received_size_bytes_sum", {"kind": K}) == 7
    inflight = v(p + "message_received_inflight_duration_seconds_sum", {"kind": K})
    assert inflight is not None and 2.0 <= inflight < 12.0
    assert v(p + "message_processing_duration_seconds_count", {"kind": K}) == 1


def test_metrics_middleware_no_creation_and_failing_handler() -> None:
    reg = CollectorRegistry()
    m = ServerMetrics(registry=reg)

    def bad(sender: Any, message: Message[Any]) -> None:
        raise RuntimeError("x")

    with pytest.raises(RuntimeError):
        run(invoke(metrics_middleware(m)(bad), FakeSender(), msg(creation_ns=0)))
    v = reg.get_sample_value
    assert v("goomerang_server_message_received_size_bytes_count", {"kind": K}) == 1
    assert (
        v("goomerang_server_message_received_inflight_duration_seconds_count", {"kind": K}) is None
    )
    assert v("goomerang_server_message_processing_duration_seconds_count", {"kind": K}) == 1


def test_metrics_middleware_sync_handler_needs_no_event_loop() -> None:
    reg = CollectorRegistry()
    seen: list[str] = []
    chain = metrics_middleware(ServerMetrics(registry=reg))(lambda s, m: seen.append(m.kind))
    assert chain(FakeSender(), msg()) is None  # no coroutine for a plain handler
    assert seen == [K]
    assert (
        reg.get_sample_value(
            "goomerang_server_message_processing_duration_seconds_count", {"kind": K}
        )
        == 1
    )


def test_metrics_middleware_async_handler_that_raises_is_still_timed() -> None:
    reg = CollectorRegistry()

    async def bad(sender: Any, message: Message[Any]) -> None:
        await asyncio.sleep(0)
        raise LookupError("late")

    chain = metrics_middleware(ServerMetrics(registry=reg))(bad)
    with pytest.raises(LookupError):
        run(invoke(chain, FakeSender(), msg()))
    assert (
        reg.get_sample_value(
            "goomerang_server_message_processing_duration_seconds_count", {"kind": K}
        )
        == 1
    )
