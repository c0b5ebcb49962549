"""A started goomerang Server on its own event loop in a daemon thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from goomerang_proto import Status

from ..asyncio.server import Server
from ..loop import new_event_loop

T = TypeVar("T")

START_TIMEOUT = 10.0


class ServerThread:
    """``with ServerThread(setup, **options) as st:`` a running Server on 127.0.0.1:0.

    ``setup(server)`` registers handlers and middlewares before the start;
    ``options`` are :class:`~goomerang_io.ServerOptions` fields and the other
    ``Server`` keyword arguments. ``st.addr`` (``127.0.0.1:PORT``), ``st.url``,
    ``st.server``; ``st.call(coro_fn, timeout)`` runs a coroutine on the
    server's loop and returns its result. Leaving the block shuts the server
    down gracefully (bounded by ``shutdown_timeout`` seconds) and joins the thread.
    RuntimeError when the server does not start within 10 s.
    """

    def __init__(
        self,
        setup: Callable[[Server], None] | None = None,
        *,
        shutdown_timeout: float = 5.0,
        **options: Any,
    ) -> None:
        self._setup = setup
        self._options = options
        self.shutdown_timeout = shutdown_timeout
        self.loop = new_event_loop()
        self.server: Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._main, name="goomerang-test-server", daemon=True
        )

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    async def _start(self) -> None:
        server = Server("127.0.0.1:0", **self._options)
        if self._setup is not None:
            self._setup(server)
        await server.start()
        self.server = server

    @property
    def addr(self) -> str:
        """``127.0.0.1:PORT`` of the running server."""
        assert self.server is not None, "the server is not running"
        return self.server.addr

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/ws``."""
        assert self.server is not None, "the server is not running"
        return self.server.url

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 5.0) -> T:
        """Run ``fn()`` on the server's loop; its result (TimeoutError after ``timeout`` s)."""
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def start(self) -> ServerThread:
        """Start the thread and wait until the server listens."""
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"the test server did not start within {START_TIMEOUT} s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Shut the server down and join the thread (idempotent)."""
        server = self.server
        if not self._thread.is_alive():
            return
        if server is not None and server.status is Status.RUNNING:
            with contextlib.suppress(Exception):  # the loop is stopped below in any case
                self.call(server.shutdown, timeout=self.shutdown_timeout + 3)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(self.shutdown_timeout + 3)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
