"""The pair's virtual clock drives the engine's own deadlines (issue 11: the engine owns them).

Each timeout is tested in microseconds: nothing sleeps, time moves by ``advance``.
"""

from __future__ import annotations

import pytest

from goomerang_proto import Status
from goomerang_proto import events as ev
from goomerang_proto.testing import Pair


def pongs(pair: Pair) -> int:
    return sum(isinstance(e, ev.PongReceived) for e in pair.client.events)


def test_keepalive_pings_at_each_interval_and_the_peer_answers() -> None:
    pair = Pair(client_options={"ping_interval": 5.0, "ping_timeout": 2.0})
    pair.advance(4.999)
    assert pongs(pair) == 0
    pair.advance(0.001)
    assert pongs(pair) == 1
    pair.advance(15.0)
    assert pongs(pair) == 4 and pair.client.status is Status.RUNNING


def test_a_silent_server_is_dropped_after_ping_timeout() -> None:
    pair = Pair(client_options={"ping_interval": 5.0, "ping_timeout": 2.0})
    pair.stall(pair.client, to_client=True, to_server=False)  # the server's answers never come
    pair.advance(6.999)
    assert pair.client.status is Status.RUNNING
    pair.advance(0.002)
    assert pair.client.status is Status.CLOSED
    assert pair.client.closed is not None and not pair.client.closed.by_peer


def test_close_gives_up_after_close_timeout_when_the_peer_never_answers() -> None:
    pair = Pair(client_options={"close_timeout": 3.0, "ping_interval": None})
    pair.stall(pair.client)
    pair.client.close()
    pair.advance(2.9)
    assert pair.client.status is Status.CLOSING
    pair.advance(0.2)
    assert pair.client.status is Status.CLOSED
    pair.unstall(pair.client)
    pair.run()
    assert pair.client.server_conn is not None
    assert pair.client.server_conn.status is Status.CLOSED


def test_a_client_connected_later_starts_its_deadlines_at_the_virtual_now() -> None:
    pair = Pair(client_options={"ping_interval": 5.0})
    pair.advance(100.0)
    late = pair.connect()
    assert late.conn.get_timer() == pytest.approx(105.0)  # type: ignore[attr-defined]
