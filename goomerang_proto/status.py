"""Lifecycles: NEW -> RUNNING -> CLOSING -> CLOSED, for endpoints and for connections.

Theory of operation: every allowed move is one row in a table; a move that is
not in the table raises :class:`~goomerang_proto.errors.IllegalTransition`.

* Endpoints (a Server, a Client): keyed by (side, from). Servers end in CLOSED;
  clients may go from CLOSED back to RUNNING by connecting again.
* Connections (one engine per TCP connection): one table for both sides, no
  way back from CLOSED. Every status change of an engine goes through
  :func:`move_connection` (a test walks the engine's source and fails on any
  other ``.status =`` assignment), as h11's ``_state.py`` keeps its one table.

The integer values are the ones exported by the status metrics (0 NEW .. 3 CLOSED).
"""

from __future__ import annotations

import enum
from typing import Final, Protocol

from .errors import IllegalTransition


class Status(enum.IntEnum):
    """Lifecycle status of a client or a server."""

    NEW = 0
    RUNNING = 1
    CLOSING = 2
    CLOSED = 3

    def __str__(self) -> str:
        return self.name  # f"{status}" and print(status) show RUNNING, not 1

    def __format__(self, spec: str) -> str:
        return self.name if not spec else int(self).__format__(spec)


# The members as module constants, for the per-message paths: ``status is RUNNING``
# reads a module global, where ``Status.RUNNING`` is an attribute lookup on the enum
# class that CPython 3.11 does not specialize (about 700 instructions; mypyc-compiled
# modules pay it too).
NEW: Final = Status.NEW
RUNNING: Final = Status.RUNNING
CLOSING: Final = Status.CLOSING
CLOSED: Final = Status.CLOSED


class Side(enum.Enum):
    """Which end of a connection an endpoint is."""

    CLIENT = "client"
    SERVER = "server"


_ALLOWED: dict[tuple[Side, Status], frozenset[Status]] = {
    (Side.SERVER, Status.NEW): frozenset({Status.RUNNING, Status.CLOSED}),
    (Side.SERVER, Status.RUNNING): frozenset({Status.CLOSING, Status.CLOSED}),
    (Side.SERVER, Status.CLOSING): frozenset({Status.CLOSED}),
    (Side.SERVER, Status.CLOSED): frozenset(),
    (Side.CLIENT, Status.NEW): frozenset({Status.RUNNING, Status.CLOSED}),
    (Side.CLIENT, Status.RUNNING): frozenset({Status.CLOSING, Status.CLOSED}),
    (Side.CLIENT, Status.CLOSING): frozenset({Status.CLOSED}),
    (Side.CLIENT, Status.CLOSED): frozenset({Status.RUNNING}),
}


def can_transition(side: Side, current: Status, new: Status) -> bool:
    """Tell whether ``side`` may move from ``current`` to ``new``."""
    return new in _ALLOWED[(side, current)]


class Lifecycle:
    """A status holder that only moves along the allowed transitions."""

    __slots__ = ("_side", "_status")

    def __init__(self, side: Side) -> None:
        self._side = side
        self._status = Status.NEW

    @property
    def status(self) -> Status:
        """The current status."""
        return self._status

    @property
    def side(self) -> Side:
        """Client or server."""
        return self._side

    def move(self, new: Status) -> Status:
        """Move to ``new``; raise IllegalTransition if the table forbids it. Returns the old one."""
        old = self._status
        if not can_transition(self._side, old, new):
            raise IllegalTransition(f"{self._side.value} cannot go from {old.name} to {new.name}")
        self._status = new
        return old


_CONNECTION_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.RUNNING, Status.CLOSED}),
    Status.RUNNING: frozenset({Status.CLOSING, Status.CLOSED}),
    Status.CLOSING: frozenset({Status.CLOSED}),
    Status.CLOSED: frozenset(),
}


class HasStatus(Protocol):
    """Anything with a ``status`` attribute (an engine connection)."""

    status: Status


def start_connection(conn: HasStatus) -> None:
    """Give a new engine connection its first status, NEW (the table's only entry point)."""
    conn.status = Status.NEW


def move_connection(conn: HasStatus, new: Status) -> None:
    """Move an engine connection to ``new``; IllegalTransition if the table forbids it.

    Connections: NEW -> RUNNING (upgrade done) or CLOSED (rejected, failed, timed
    out); RUNNING -> CLOSING (we sent Close) or CLOSED (the peer's Close was
    answered, a failure, a timeout, EOF); CLOSING -> CLOSED.
    """
    old = conn.status
    if new not in _CONNECTION_ALLOWED[old]:
        raise IllegalTransition(f"connection cannot go from {old.name} to {new.name}")
    conn.status = new
