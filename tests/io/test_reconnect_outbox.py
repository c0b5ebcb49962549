"""Reconnect users can build on (issue 16, input 13): a bounded outbox, fresh headers.

``outbox_size`` keeps sends made while reconnecting and sends them, in
order, once connected again (past the size: OutboxFull; on close: dropped
and reported). A ``headers`` callable is evaluated at each connect, so a
token can be refreshed.
"""

from __future__ import annotations

from typing import Any

import pytest
from hookwait import HookWait
from threaded import ThreadedServer
from util import Inbox, msg, run

from goomerang_io import Client, NotRunning, OutboxFull, Request, Server
from goomerang_io import sync as sync_client
from goomerang_proto import Status
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1


def recording_server(addr: str, inbox: Inbox, tokens: list[str | None]) -> Server:
    def authenticate(request: Request) -> Any:
        tokens.append(request.header("authorization"))
        return "user"

    server = Server(addr, authenticate=authenticate)
    server.handle(MessageV1, lambda s, m: inbox.put(m.payload.message))
    return server


def test_sends_while_reconnecting_go_out_in_order_with_a_fresh_token() -> None:
    async def main() -> None:
        first_got, second_got = Inbox(), Inbox()
        tokens: list[str | None] = []
        first = recording_server("127.0.0.1:0", first_got, tokens)
        await first.start()
        issued = iter(range(1, 100))
        errors = Inbox()
        client = Client(
            first.addr,
            heartbeat_interval=None,
            reconnect=True,
            reconnect_initial=0.05,
            outbox_size=3,
            headers=lambda: [("Authorization", f"Bearer t{next(issued)}")],
            on_error=errors,
        )
        hooks = HookWait().watch(client, "on_status_change")
        await client.connect()
        await client.send(msg("before"))
        await first_got.wait_count(1)
        await first.shutdown()
        await hooks.until(lambda: client.status is Status.CLOSED)
        for text in ("one", "two", "three"):
            await client.send(msg(text))  # kept, not NotRunning
        with pytest.raises(OutboxFull):
            await client.broadcast(msg("four"))
        second = recording_server(first.addr, second_got, tokens)
        await second.start()
        try:
            await hooks.until(lambda: client.status is Status.RUNNING)
            await second_got.wait_count(3)
            assert second_got.items == ["one", "two", "three"]
            assert tokens[0] == "Bearer t1"
            assert tokens[-1] is not None and tokens[-1] != "Bearer t1"  # asked again
            await client.close()
        finally:
            await second.shutdown()

    run(main())


def test_without_an_outbox_sends_while_reconnecting_raise_and_close_drops_the_outbox() -> None:
    async def main() -> None:
        got: Inbox = Inbox()
        server = recording_server("127.0.0.1:0", got, [])
        await server.start()
        plain = Client(server.addr, heartbeat_interval=None, reconnect=True, reconnect_initial=5)
        queued_errors = Inbox()
        queued = Client(
            server.addr,
            heartbeat_interval=None,
            reconnect=True,
            reconnect_initial=5,
            outbox_size=10,
            on_error=queued_errors,
        )
        hooks = HookWait().watch(plain, "on_status_change").watch(queued, "on_status_change")
        await plain.connect()
        await queued.connect()
        await server.shutdown()
        await hooks.until(lambda: plain.status is Status.CLOSED and queued.status is Status.CLOSED)
        with pytest.raises(NotRunning):
            await plain.send(msg())
        await queued.publish("room", msg("kept"))
        await queued.close()  # gives up reconnecting: the kept message is dropped, reported
        await queued_errors.wait_for(lambda e: "dropped" in str(e))
        await plain.close()

    run(main())


def test_the_blocking_client_asks_the_headers_callable_and_refuses_outbox_size() -> None:
    calls: list[int] = []
    seen: list[str | None] = []

    def setup(server: Server) -> None:
        server.authenticate = lambda r: seen.append(r.header("authorization")) or "user"

    def headers() -> list[tuple[str, str]]:
        calls.append(1)
        return [("Authorization", f"Bearer b{len(calls)}")]

    with ThreadedServer(setup) as ts:
        client = sync_client.Client(ts.addr, heartbeat_interval=None, headers=headers)
        with client:
            pass
        with client:
            pass
        assert seen == ["Bearer b1", "Bearer b2"]
    with pytest.raises(ValueError, match="outbox_size"):
        sync_client.Client("127.0.0.1:1", outbox_size=5)
