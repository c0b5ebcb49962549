"""The goomerang pytest plugin (entry point ``pytest11: goomerang``), loaded in every pytest run.

It imports nothing optional at load time (no hypothesis, no asyncio server
until a fixture is used). Fixtures:

* ``goomerang_setup``: override it to return ``setup(endpoint)``, which
  registers your handlers and middlewares; it is applied to the in-memory
  pair's server and to the real server alike (default: registers nothing);
* ``goomerang_server_options``: override it to return ``Server`` keyword
  arguments (default ``{}``);
* ``goomerang_pair``: a :class:`goomerang_proto.testing.Pair` with your setup,
  one client connected (no sockets, virtual clock);
* ``goomerang_server``: a :class:`goomerang_io.testing.ServerThread` running
  ``Server("127.0.0.1:0")`` with your setup, shut down after the test;
* ``goomerang_client_setup``: override it to return ``setup(client)`` for the
  client's own handlers (run before it connects; default: none);
* ``goomerang_client``: a connected blocking ``goomerang_io.sync.Client`` to
  ``goomerang_server`` that knows every message type the server knows,
  closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from goomerang_io.sync import Client as SyncClient
    from goomerang_proto.testing import Pair

    from .server import ServerThread

Setup = Callable[[Any], None]


@pytest.fixture
def goomerang_setup() -> Setup:
    """``setup(endpoint)`` registering handlers; override in your conftest or test module."""

    def setup(_endpoint: Any) -> None:
        return None

    return setup


@pytest.fixture
def goomerang_server_options() -> dict[str, Any]:
    """Keyword arguments for ``Server`` (ServerOptions fields, hooks); override to change."""
    return {}


@pytest.fixture
def goomerang_pair(goomerang_setup: Setup) -> Pair:
    """An in-memory server (your setup) with one connected client; ``run()``, ``advance()``."""
    from goomerang_proto.testing import Pair

    pair = Pair(connect=False)
    goomerang_setup(pair.server)
    pair.connect()
    return pair


@pytest.fixture
def goomerang_server(
    goomerang_setup: Setup, goomerang_server_options: dict[str, Any]
) -> Iterator[ServerThread]:
    """A running Server on 127.0.0.1 (free port) with your setup; shut down afterwards."""
    from .server import ServerThread

    with ServerThread(goomerang_setup, **goomerang_server_options) as st:
        yield st


@pytest.fixture
def goomerang_client_setup() -> Setup:
    """``setup(client)`` registering the client's handlers before it connects; override it."""

    def setup(_client: Any) -> None:
        return None

    return setup


@pytest.fixture
def goomerang_client(
    goomerang_server: ServerThread, goomerang_client_setup: Setup
) -> Iterator[SyncClient]:
    """A blocking client connected to ``goomerang_server``; closed afterwards."""
    from goomerang_io.sync import Client
    from goomerang_proto import Status

    client = Client(goomerang_server.addr)
    assert goomerang_server.server is not None
    for cls in goomerang_server.server.router.registry.table.values():
        client.register_message(cls)  # the client decodes whatever the server knows
    goomerang_client_setup(client)
    client.connect()
    try:
        yield client
    finally:
        if client.status is Status.RUNNING:
            client.close()
