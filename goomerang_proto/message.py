"""The user-facing message: a protobuf payload plus headers and envelope metadata."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message as ProtoMessage

from .registry import kind_of

P = TypeVar("P", bound=ProtoMessage)

# payload class -> kind (a class's full name never changes)
_KINDS: dict[type, str] = {}

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


class Message(Generic[P]):
    """A goomerang message.

    ``payload`` is any protobuf message; ``headers`` are user headers
    (str -> str). The metadata fields are filled in by the engine on receipt:
    ``kind`` (protobuf full name), ``uuid`` and ``is_sync`` (set on sync
    requests and replies), ``creation_ns`` (sender's clock, nanoseconds since
    the epoch, 0 when absent) and ``payload_size`` (bytes of the serialized
    payload).
    """

    __slots__ = ("creation_ns", "headers", "is_sync", "kind", "payload", "payload_size", "uuid")

    def __init__(
        self,
        payload: P,
        headers: dict[str, str] | None = None,
        *,
        kind: str | None = None,
        uuid: str = "",
        is_sync: bool = False,
        creation_ns: int = 0,
        payload_size: int = 0,
    ) -> None:
        self.payload = payload
        self.headers: dict[str, str] = headers if headers is not None else {}
        if kind is None:
            kind = _KINDS.get(type(payload))
            if kind is None:
                kind = _KINDS[type(payload)] = kind_of(payload)
        self.kind: str = kind
        self.uuid = uuid
        self.is_sync = is_sync
        self.creation_ns = creation_ns
        self.payload_size = payload_size

    @property
    def creation(self) -> _dt.datetime | None:
        """When the sender packed the frame (UTC), or None when the frame had no timestamp."""
        if not self.creation_ns:
            return None
        return _EPOCH + _dt.timedelta(microseconds=self.creation_ns // 1000)

    def __repr__(self) -> str:
        extra = f", uuid={self.uuid!r}, is_sync=True" if self.is_sync else ""
        return (
            f"Message(kind={self.kind!r}, headers={self.headers!r}{extra}, "
            f"payload={self.payload!r})"
        )

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (
            self.kind == other.kind
            and self.payload == other.payload
            and self.headers == other.headers
            and self.uuid == other.uuid
            and self.is_sync == other.is_sync
        )

    __hash__ = None  # type: ignore[assignment]


#: Most header entries a received message may carry (checked by the engine's decoder):
#: a message with more is dropped and reported as MalformedFrame. Go goomerang sets no
#: limit; without one a 1 MiB message of tiny entries decodes to about 10 MB of dict.
MAX_HEADERS = 1024

#: Bytes counted per header entry beyond its key and value (a dict slot and two str
#: objects): see ``held_size``.
HEADER_OVERHEAD = 128


def held_size(message: Message[Any]) -> int:
    """Bytes a received ``message`` holds while it waits for a handler, for the backlog
    bounds (``max_queue_bytes``): its payload plus, per header, the key, the value and
    ``HEADER_OVERHEAD`` bytes (headers can outweigh a small payload many times)."""
    headers = message.headers
    if not headers:
        return message.payload_size
    return message.payload_size + sum(len(k) + len(v) + HEADER_OVERHEAD for k, v in headers.items())
