"""Who may do what: the server's checks on client-initiated subscribe, publish and broadcast.

The Go goomerang has no authorization: any client may subscribe to, publish
to or broadcast on anything, bypassing the server's handlers. Here the server
decides, in the field's usual terms (NATS subject permissions, Centrifugo
channel permissions):

* options ``client_subscribe`` / ``client_publish`` (``True``: any topic,
  ``False``: none, or a sequence of ``fnmatch`` patterns such as
  ``("room.*", "news")``) and ``client_broadcast`` (``True``/``False``);
* per-connection vetoes ``can_subscribe(sender, topic)``,
  ``can_publish(sender, topic, message)`` and ``can_broadcast(sender, message)``:
  plain functions returning True to allow; they see ``sender.identity`` (what
  ``authenticate`` returned). A veto that raises, or returns anything but
  True, refuses (fail closed); an async veto is refused with a TypeError
  reported, since commands are applied in arrival order.

A refused command is dropped: nothing is subscribed or fanned out. The server
reports :class:`PermissionDenied` through its ``on_error`` hooks. A client that
negotiated error replies in the upgrade (this library's clients do) gets a
``PermissionDenied`` on its own ``on_error`` hooks; the Go client gets
nothing, on purpose: on any close code but 1000 and 1006 it stops reading yet
stays RUNNING, so closing the connection would silently break it.

Error replies: the ``error-replies`` protocol extension, negotiated on the
upgrade (``Goomerang-Extensions``, docs/PROTOCOL-extensions.md): our clients
offer it, our server echoes it. Only then does the server send error
messages: a ``google.protobuf.StringValue`` whose ``goomerang-error`` header
holds the code (``no-handler``, ``handler-error``, ``forbidden``), with the
request's uuid for a failed sync request.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.wrappers_pb2 import StringValue

from goomerang_proto import Message
from goomerang_proto.errors import PermissionDenied, RemoteError
from goomerang_proto.extensions import ERROR_REPLIES

__all__ = [
    "ERROR_HEADER",
    "ERROR_REPLIES",
    "TopicRule",
    "error_message",
    "error_of",
    "topic_allowed",
    "veto",
]

ERROR_HEADER = "goomerang-error"
"""Message header naming the error code of an error reply."""

TopicRule = bool | Sequence[str]
"""True (any topic), False (none) or fnmatch patterns of allowed topics."""


def check_rule(value: Any, name: str) -> TopicRule:
    """Validate a ``client_subscribe`` / ``client_publish`` option value."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be True, False or a sequence of topic patterns")
    for pattern in value:
        if not isinstance(pattern, str):
            raise TypeError(f"{name} patterns must be str, got {type(pattern).__name__}")
    return tuple(value)


def topic_allowed(rule: TopicRule, topic: str) -> bool:
    """Whether ``topic`` passes ``rule`` (``fnmatch.fnmatchcase`` on each pattern)."""
    if rule is True:
        return True
    if rule is False:
        return False
    return any(fnmatch.fnmatchcase(topic, pattern) for pattern in rule)


def veto(fn: Callable[..., Any] | None, *args: Any) -> str | None:
    """Run a ``can_*`` check; None allows, else the reason it refused."""
    if fn is None:
        return None
    try:
        result = fn(*args)
    except Exception as exc:
        return f"check raised {type(exc).__name__}: {exc}"
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()
        return "check returned an awaitable; can_* checks must be plain functions"
    if result is True:
        return None
    return "refused by the server's check"


def error_message(code: str, text: str) -> Message[StringValue]:
    """The error message sent to a negotiated peer."""
    return Message(StringValue(value=text), {ERROR_HEADER: code})


def error_of(message: Message[Any]) -> RemoteError | PermissionDenied | None:
    """The exception an error message stands for (None for a normal message)."""
    code = message.headers.get(ERROR_HEADER)
    if code is None or not isinstance(message.payload, StringValue):
        return None
    text = message.payload.value
    if code == "forbidden":
        return PermissionDenied(text)
    return RemoteError(text, code)
