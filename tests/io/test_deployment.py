"""Safe deployment (issue 16, inputs 5, 6, 12): ports, workers, enums, signals, temp files."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from threaded import ThreadedServer
from util import new_server, run

from goomerang_io import Server
from goomerang_proto import Status


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_server_on_a_port_in_use_fails_at_start_input_5(workers: int) -> None:
    """The first server binds with SO_REUSEPORT, as every multi-worker server does."""
    with ThreadedServer(reuse_port=True) as first:
        second = Server(first.addr, workers=workers)
        with pytest.raises(OSError) as info:
            second.run()  # fails before forking or serving anything
        assert info.value.errno == errno.EADDRINUSE
        assert "in use" in str(info.value)


@pytest.mark.parametrize(
    ("workers", "exc"),
    [(0, ValueError), (-3, ValueError), ("2", TypeError), (True, TypeError), (1.5, TypeError)],
)
def test_workers_is_validated_input_6(workers: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc, match="workers"):
        Server("127.0.0.1:0", workers=workers)


def test_async_with_a_multi_worker_server_says_what_to_call_input_6() -> None:
    async def main() -> None:
        server = Server("127.0.0.1:0", workers=2)
        with pytest.raises(ValueError, match=r"server\.run\(\)"):
            async with server:
                raise AssertionError("served in one process")
        assert server.status is Status.NEW

    run(main())


def test_enums_print_their_names_input_12() -> None:
    assert f"{Status.RUNNING}" == "RUNNING"
    assert str(Status.CLOSED) == "CLOSED"
    server = new_server()
    assert f"status {server.status}" == "status NEW"
