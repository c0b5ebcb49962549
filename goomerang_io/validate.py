"""Argument checks run by every public call before any byte is sent.

Each check raises ``TypeError`` (wrong type) or ``ValueError`` (right type,
wrong value) naming the argument and what was expected, so a mistake fails
in the caller instead of on the wire or in the peer.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

from google.protobuf.message import Message as ProtoMessage

from goomerang_proto import Message, UnexpectedReply
from goomerang_proto.frames import valid_close_code

R = TypeVar("R", bound=ProtoMessage)

__all__ = [
    "check_close_code",
    "check_headers",
    "check_message",
    "check_positive",
    "check_reply_class",
    "check_timeout",
    "check_topic",
    "expect_reply",
]

PAYLOAD_CLASSES: set[type] = set()  # protobuf classes seen: the isinstance check runs once


def check_message(value: Any, name: str = "message") -> Message[Any]:
    """``value`` must be a goomerang ``Message`` whose headers map str to str.

    On every send: the common case costs a type lookup and a loop over the headers.
    """
    if type(value) is Message and type(value.payload) in PAYLOAD_CLASSES:
        headers = value.headers
        if type(headers) is dict:
            for key, val in headers.items():
                if type(key) is not str or type(val) is not str:
                    break
            else:
                return value
    return _check_message_slowly(value, name)


def _check_message_slowly(value: Any, name: str) -> Message[Any]:
    if not isinstance(value, Message):
        if isinstance(value, ProtoMessage):
            cls = type(value).__name__
            raise TypeError(
                f"{name} must be a goomerang Message, got the bare protobuf {cls}; "
                f"wrap it: Message({cls}(...))"
            )
        raise TypeError(f"{name} must be a goomerang Message, got {type(value).__name__}")
    if not isinstance(value.payload, ProtoMessage):
        raise TypeError(
            f"{name}.payload must be a protobuf message, got {type(value.payload).__name__}"
        )
    headers = value.headers
    if not isinstance(headers, dict):
        raise TypeError(f"{name}.headers must be a dict[str, str], got {type(headers).__name__}")
    for key, val in headers.items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise TypeError(
                f"{name}.headers must map str to str; {key!r}: {val!r} is "
                f"{type(key).__name__}: {type(val).__name__}"
            )
    PAYLOAD_CLASSES.add(type(value.payload))
    return value


def check_topic(value: Any, name: str = "topic") -> str:
    """``value`` must be a str (the empty topic's rule belongs to the topics module)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def check_timeout(value: Any, name: str = "timeout", *, allow_none: bool = True) -> float | None:
    """``value`` must be None (when allowed) or a finite number of seconds > 0."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        expected = "a number of seconds or None" if allow_none else "a number of seconds"
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def check_close_code(value: Any, name: str = "code") -> int:
    """A close code a peer may send (RFC 6455 section 7.4.1, the IANA registry)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int close code, got {type(value).__name__}")
    if not valid_close_code(value):
        raise ValueError(
            f"{name} {value} cannot be sent in a Close frame (RFC 6455 section 7.4: "
            "1000-1003, 1007-1014 or 3000-4999)"
        )
    return value


def check_headers(value: Any, name: str = "headers") -> tuple[tuple[str, str], ...]:
    """Handshake headers: an iterable of (name, value) str pairs."""
    if isinstance(value, str | bytes | dict):
        raise TypeError(
            f"{name} must be an iterable of (name, value) str pairs, not a {type(value).__name__}"
        )
    try:
        pairs = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an iterable of (name, value) str pairs") from None
    for pair in pairs:
        if (
            not isinstance(pair, tuple)
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or not isinstance(pair[1], str)
        ):
            raise TypeError(f"{name} must hold (name, value) str pairs, got {pair!r}")
    return pairs


def check_positive(value: Any, name: str, *, integer: bool = False, minimum: float = 0) -> Any:
    """A number (an int when ``integer``) above ``minimum``."""
    types: Any = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, types):
        raise TypeError(f"{name} must be {'an int' if integer else 'a number'}, got {value!r}")
    if value <= minimum or (not integer and not math.isfinite(value)):
        raise ValueError(f"{name} must be > {minimum}, got {value!r}")
    return value


def check_reply_class(value: Any, name: str = "reply") -> None:
    """``value`` must be None or a protobuf message class."""
    if value is not None and not (isinstance(value, type) and issubclass(value, ProtoMessage)):
        raise TypeError(f"{name} must be a protobuf message class or None, got {value!r}")


def expect_reply(message: Message[Any], cls: type[R] | None) -> Message[Any]:
    """``message`` when its payload is a ``cls`` (or ``cls`` is None); else UnexpectedReply."""
    if cls is not None and not isinstance(message.payload, cls):
        raise UnexpectedReply(
            f"sync reply is {message.kind}, expected {cls.DESCRIPTOR.full_name} (reply=)"
        )
    return message
