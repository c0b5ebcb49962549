"""The case registry, verdicts and the context each case runs in.

A case is a function ``case(ctx) -> Outcome`` registered with :func:`case`
under a number (``"2.5"``), a title, the rule it checks (an RFC 6455
section or the line of PROTOCOL.md) and what it needs: ``"url"`` (any
server), ``"managed"`` (the runner started the server and can restart or
stop it). A case may also raise :class:`Verdict` (``raise failed(...)``);
an unexpected exception is a FAILED verdict with its text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from goomerang_proto.message import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

from .peer import RawPeer, connect
from .target import Target


class Status(StrEnum):
    """A case's verdict, as Autobahn|Testsuite names them."""

    OK = "OK"
    FAILED = "FAILED"
    INFORMATIONAL = "INFORMATIONAL"
    NOT_APPLICABLE = "NOT APPLICABLE"


@dataclass
class Outcome:
    """What a case found: verdict, one-line summary, details, and the bytes that differ."""

    status: Status
    summary: str
    details: list[str] = field(default_factory=list)
    expected: str = ""
    got: str = ""


class Verdict(Exception):
    """Raised by a case to end with ``outcome``."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.summary)
        self.outcome = outcome


def ok(summary: str, details: list[str] | None = None) -> Outcome:
    """An OK outcome."""
    return Outcome(Status.OK, summary, details or [])


def info(summary: str, details: list[str] | None = None, **diff: str) -> Verdict:
    """An INFORMATIONAL verdict: allowed by the protocol, worth knowing."""
    return Verdict(Outcome(Status.INFORMATIONAL, summary, details or [], **diff))


def failed(summary: str, details: list[str] | None = None, **diff: str) -> Verdict:
    """A FAILED verdict; ``expected=`` and ``got=`` show the bytes or values that differ."""
    return Verdict(Outcome(Status.FAILED, summary, details or [], **diff))


CaseFn = Callable[["Context"], Outcome]


@dataclass(frozen=True)
class Case:
    """One registered case."""

    id: str
    title: str
    rule: str
    needs: str
    fn: CaseFn

    @property
    def group(self) -> str:
        """The group number (``"2"`` for ``"2.5"``)."""
        return self.id.split(".", 1)[0]

    @property
    def sort_key(self) -> tuple[int, ...]:
        """Numeric order (2.10 after 2.9)."""
        return tuple(int(p) for p in self.id.split("."))


CASES: dict[str, Case] = {}

GROUPS = {
    "1": "Opening handshake",
    "2": "Envelope and echo",
    "3": "Faults the connection survives",
    "4": "Broadcast and publish/subscribe",
    "5": "Control frames",
    "6": "Fragmentation",
    "7": "Message size",
    "8": "Hostile input",
    "9": "Graceful shutdown",
    "10": "Keep-alive and timeouts",
}


def case(id: str, title: str, *, rule: str, needs: str = "url") -> Callable[[CaseFn], CaseFn]:
    """Register ``fn`` as case ``id``."""

    def register(fn: CaseFn) -> CaseFn:
        if id in CASES:
            raise ValueError(f"case {id} registered twice")
        CASES[id] = Case(id, title, rule, needs, fn)
        return fn

    return register


class Context:
    """What a case gets: the target, fresh connections, and the profile's echo check."""

    def __init__(self, target: Target, *, timeout: float = 3.0) -> None:
        self.target = target
        self.timeout = timeout
        self._peers: list[RawPeer] = []

    def peer(self) -> RawPeer:
        """A new connection whose upgrade succeeded (closed when the case ends)."""
        p = connect(self.target.host, self.target.port, timeout=self.timeout)
        self._peers.append(p)
        return p

    def raw(self) -> RawPeer:
        """A new TCP connection, no upgrade yet (closed when the case ends)."""
        p = RawPeer(self.target.host, self.target.port, timeout=self.timeout)
        self._peers.append(p)
        return p

    def close_all(self) -> None:
        """Close every connection the case opened."""
        for p in self._peers:
            p.close()
        self._peers.clear()

    @contextlib.contextmanager
    def scope(self) -> Iterator[Context]:
        """Run a case; its connections are closed afterwards."""
        try:
            yield self
        finally:
            self.close_all()


def msg(text: str, headers: dict[str, str] | None = None) -> Message[Any]:
    """A ``goomerang.example.MessageV1`` (the profile's type)."""
    return Message(MessageV1(message=text), headers or {})


def echo_works(peer: RawPeer, text: str = "alive", timeout: float = 3.0) -> bool:
    """True when an async MessageV1 sent on ``peer`` comes back (skipping other messages)."""
    try:
        peer.send_message(msg(text))
        for _ in range(64):
            _, env = peer.next_envelope(timeout)
            if (
                env.kind == "goomerang.example.MessageV1"
                and MessageV1.FromString(env.payload).message == text
            ):
                return True
    except Exception:
        return False
    return False
