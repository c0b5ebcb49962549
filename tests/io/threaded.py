"""An asyncio Server running on its own loop in a background thread (for blocking tests).

``with ThreadedServer(setup) as ts:`` builds ``Server("127.0.0.1:0", **kwargs)``
inside the server thread, lets ``setup(server)`` register handlers, starts it
and yields; ``ts.call(coro_fn)`` runs a coroutine on the server's loop and
returns its result (bounded wait). On exit the server is shut down and the
thread joined.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from goomerang_io import Server
from goomerang_io.loop import new_event_loop
from goomerang_proto import Status

T = TypeVar("T")

WAIT = 5.0


class ThreadedServer:
    """A started Server on a loop in a daemon thread."""

    def __init__(self, setup: Callable[[Server], None] | None = None, **kwargs: Any) -> None:
        self._setup = setup
        self._kwargs = kwargs
        self.loop = new_event_loop()
        self.server: Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="test-server", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    async def _start(self) -> None:
        server = Server("127.0.0.1:0", **self._kwargs)
        if self._setup is not None:
            self._setup(server)
        await server.start()
        self.server = server

    @property
    def addr(self) -> str:
        """``127.0.0.1:PORT`` of the running server."""
        assert self.server is not None
        return self.server.addr

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = WAIT) -> T:
        """Run ``fn()`` on the server loop; return its result."""
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        if not self._ready.wait(WAIT):
            raise RuntimeError("server thread did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        server = self.server
        if server is not None and server.status is Status.RUNNING:
            try:
                self.call(server.shutdown, timeout=WAIT + 3)
            except Exception:  # still stop the loop
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)
