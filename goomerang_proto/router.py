"""Handler routing: one handler per kind, middlewares in registration order.

Pure composition, no IO. A handler is ``handler(sender, message)`` and may
return an awaitable (the adapter awaits it). A middleware is
``middleware(next_handler) -> handler``; the first registered runs first
(outermost). The chains are built once by :meth:`Router.freeze`, when the
endpoint starts; registering afterwards raises :class:`RouterFrozen`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message as ProtoMessage

from .errors import RouterFrozen
from .registry import Registry, kind_of

Handler = Callable[[Any, Any], Any]
Middleware = Callable[[Handler], Handler]


class Router:
    """Kind -> handler table plus middlewares; freezes into composed chains."""

    __slots__ = ("_chains", "_frozen", "_handlers", "_middlewares", "registry")

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else Registry()
        self._handlers: dict[str, Handler] = {}
        self._middlewares: list[Middleware] = []
        self._chains: dict[str, Handler] = {}
        self._frozen = False

    @property
    def frozen(self) -> bool:
        """True once the chains are built."""
        return self._frozen

    def _check_open(self, what: str) -> None:
        if self._frozen:
            raise RouterFrozen(f"cannot register {what}: the endpoint already started")

    def handle(self, cls: type[ProtoMessage], handler: Handler) -> None:
        """Route messages of ``cls`` to ``handler`` (replaces an earlier handler for it)."""
        self._check_open(f"a handler for {kind_of(cls)}")
        if not callable(handler):
            raise TypeError(f"handler for {kind_of(cls)} is not callable: {handler!r}")
        kind = self.registry.register(cls)
        self._handlers[kind] = handler

    def register_message(self, cls: type[ProtoMessage]) -> None:
        """Make ``cls`` known (decodable) without a handler."""
        self._check_open(f"message {kind_of(cls)}")
        self.registry.register(cls)

    def middleware(self, middleware: Middleware) -> None:
        """Add a middleware; middlewares run in registration order around every handler."""
        self._check_open("a middleware")
        if not callable(middleware):
            raise TypeError(f"middleware is not callable: {middleware!r}")
        self._middlewares.append(middleware)

    def prepend_middleware(self, middleware: Middleware) -> None:
        """Add a middleware that runs before (outside) every other one."""
        self._check_open("a middleware")
        self._middlewares.insert(0, middleware)

    def compose(self, handler: Handler) -> Handler:
        """Wrap ``handler`` in every middleware (first registered outermost)."""
        chain = handler
        for mw in reversed(self._middlewares):
            chain = mw(chain)
        return chain

    def freeze(self) -> None:
        """Build every chain; later registrations raise RouterFrozen. Idempotent."""
        if self._frozen:
            return
        self._chains = {kind: self.compose(h) for kind, h in self._handlers.items()}
        self._frozen = True

    def resolve(self, kind: str) -> Handler | None:
        """The composed chain for ``kind`` (after freeze), or None when no handler is set."""
        if self._frozen:
            return self._chains.get(kind)
        handler = self._handlers.get(kind)
        return self.compose(handler) if handler is not None else None

    def resolver(self) -> Callable[[str], Handler | None]:
        """A function equal to :meth:`resolve`; after ``freeze`` the chain table's own ``get``."""
        return self._chains.get if self._frozen else self.resolve

    def kinds(self) -> list[str]:
        """Kinds that have a handler."""
        return list(self._handlers)
