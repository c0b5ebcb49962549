"""The keyword arguments of ``Server`` and the clients, typed for ``Unpack`` (PEP 692).

Every :class:`~goomerang_io.options.ServerOptions` / ``ClientOptions`` field
and every hook is one optional key, so a type checker reports a misspelt
option (``max_conns=5``) or a wrong type (``reconnect="yes"``); at run time
``Endpoint._setup`` rejects unknown names the same way. A hook takes one
callable or an iterable of them. ``tests/test_keywords.py`` keeps these in
step with the dataclasses and the hook lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypedDict, TypeVar

from goomerang_proto import Status

F = TypeVar("F")

Hook = Callable[..., Any] | Iterable[Callable[..., Any]]
ErrorHook = Callable[[BaseException], Any] | Iterable[Callable[[BaseException], Any]]
StatusHook = Callable[[Status], Any] | Iterable[Callable[[Status], Any]]


class _CommonHooks(TypedDict, total=False):
    on_status_change: StatusHook
    on_close: Hook
    on_error: ErrorHook
    on_configuration: Hook
    on_worker_start: Hook
    on_worker_end: Hook


class ServerKeywords(_CommonHooks, total=False):
    """``Server(listen, **options)``: the options and hooks, each optional."""

    max_concurrency: int
    max_message_size: int
    handshake_timeout: float
    close_timeout: float
    ping_interval: float | None
    ping_timeout: float | None
    max_connections: int
    write_limit: int
    slow_client_limit: int
    slow_client_code: int
    max_request_size: int
    max_queue: int
    max_queue_bytes: int
    max_subscriptions: int
    shutdown_timeout: float
    compression: bool
    client_subscribe: bool | Sequence[str]
    client_publish: bool | Sequence[str]
    client_broadcast: bool
    on_broadcast: Hook
    on_client_broadcast: Hook
    on_subscribe: Hook
    on_unsubscribe: Hook
    on_group_join: Hook
    on_group_leave: Hook
    on_publish: Hook
    on_connect: Hook
    on_disconnect: Hook


class ClientKeywords(_CommonHooks, total=False):
    """``Client(server, **options)`` (asyncio and blocking): the options and hooks."""

    max_concurrency: int
    max_queue: int
    max_queue_bytes: int
    heartbeat_interval: float | None
    ping_timeout: float | None
    handshake_timeout: float
    close_timeout: float
    max_message_size: int
    max_pending_sync: int
    write_limit: int
    compression: bool
    reconnect: bool
    reconnect_initial: float
    reconnect_max: float
    outbox_size: int
    on_reconnect_attempt: Hook


__all__ = ["ClientKeywords", "ServerKeywords"]
