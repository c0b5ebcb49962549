"""What servers and clients share: keyword options, handler registry, hooks, lifecycle."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from google.protobuf.message import Message as ProtoMessage

from goomerang_proto import Closing, Lifecycle, Message, NotRunning, Router, Side, Status

from .hooks import Hooks
from .options import check_options
from .sender import Sender

P = TypeVar("P", bound=ProtoMessage)
AnyHandler = Callable[[Sender, Message[Any]], object]
"""A handler in a middleware chain: ``handler(sender, message)``."""

OptionsT = TypeVar("OptionsT")


class Endpoint:
    """Base of ``Server``, ``Client`` and ``sync.Client``.

    ``_setup`` turns the keyword arguments into the options dataclass and the
    hook lists; the methods below register handlers, middlewares, message
    types and hooks, and move the lifecycle.
    """

    metrics: Any = None
    options: Any
    hooks: Hooks
    router: Router
    _lifecycle: Lifecycle

    def _setup(
        self,
        options_cls: type[OptionsT],
        hook_names: Iterable[str],
        side: Side,
        kwargs: dict[str, Any],
        what: str,
    ) -> OptionsT:
        names = tuple(hook_names)
        hook_args = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        fields = {f.name for f in dataclasses.fields(options_cls)}  # type: ignore[arg-type]
        unknown = set(kwargs) - fields
        if unknown:
            raise TypeError(f"unknown {what} option(s): {', '.join(sorted(unknown))}")
        options = options_cls(**kwargs)
        check_options(options)  # type: ignore[arg-type]
        if getattr(options, "compression", False):
            raise ValueError("compression (permessage-deflate) is not supported yet")
        self.options = options
        self.hooks = Hooks(names)
        for name, fn in hook_args.items():
            self.hooks.add(name, fn)
        self.router = Router()
        self._lifecycle = Lifecycle(side)
        self.ended = False
        """True once the status is CLOSED: ``is_closed()`` as a plain attribute, which the
        compiled server protocol reads on every send."""
        return options

    # ------------------------------------------------------------ registry
    def handle(self, cls: type[P], handler: Callable[[Sender, Message[P]], object]) -> None:
        """Route messages of ``cls`` to ``handler(sender, message)``.

        ``handler`` is a plain function or a coroutine function; its message is
        a ``Message[cls]``, so a type checker reports a handler written for
        another class or with another arity. Raises TypeError when ``cls`` is
        not a protobuf message class or ``handler`` is not callable, and
        RouterFrozen once the endpoint started.
        """
        if not (isinstance(cls, type) and issubclass(cls, ProtoMessage)):
            raise TypeError(f"cls must be a protobuf message class, got {cls!r}")
        self.router.handle(cls, handler)

    def middleware(self, middleware: Callable[[AnyHandler], AnyHandler]) -> None:
        """Add a middleware ``middleware(next_handler) -> handler``; runs in registration order.

        A handler is ``handler(sender, message) -> None | Awaitable``.
        """
        self.router.middleware(middleware)

    def register_message(self, cls: type[ProtoMessage]) -> None:
        """Make ``cls`` decodable without a handler (commands, sync reply types).

        Raises TypeError when ``cls`` is not a protobuf message class.
        """
        if not (isinstance(cls, type) and issubclass(cls, ProtoMessage)):
            raise TypeError(f"cls must be a protobuf message class, got {cls!r}")
        self.router.register_message(cls)

    def add_hook(self, name: str, fn: Callable[..., Any]) -> None:
        """Register hook ``fn`` under ``name`` (e.g. ``"on_error"``)."""
        self.hooks.add(name, fn)

    def on_error(self, fn: Callable[[BaseException], Any]) -> None:
        """Register an error hook."""
        self.hooks.add("on_error", fn)

    def on_status_change(self, fn: Callable[[Status], Any]) -> None:
        """Register a status-change hook."""
        self.hooks.add("on_status_change", fn)

    def on_close(self, fn: Callable[[], Any]) -> None:
        """Register a hook called each time the endpoint ends CLOSED."""
        self.hooks.add("on_close", fn)

    # ----------------------------------------------------------- lifecycle
    @property
    def status(self) -> Status:
        """NEW, RUNNING, CLOSING or CLOSED."""
        return self._lifecycle.status

    def _move(self, status: Status) -> None:
        self._lifecycle.move(status)
        self.ended = status is Status.CLOSED
        if self.metrics is not None:
            self.metrics.set_status(int(status))
            flush = getattr(self.metrics, "flush", None)
            if status is Status.CLOSED and flush is not None:
                flush()  # nothing buffered may wait for a loop iteration that never comes
        self.hooks.run("on_status_change", status)

    def _require_running(self) -> None:
        """Before a command: Closing while CLOSING, NotRunning unless RUNNING (the asyncio
        Server's and Client's wording)."""
        status = self.status
        if status is Status.RUNNING:
            return
        if self._lifecycle.side is Side.SERVER:
            name, closing = "server", "server is shutting down"
        else:
            name, closing = "client", "client is closing: no new messages are accepted"
        if status is Status.CLOSING:
            raise Closing(closing)
        raise NotRunning(f"{name} is {status.name}")

    def report_error(self, exc: BaseException) -> None:
        """Send ``exc`` to the on_error hooks (and count it when metered)."""
        if self.metrics is not None:
            self.metrics.error()
        self.hooks.error(exc)
