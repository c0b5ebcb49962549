"""Registry of known message types: kind string (protobuf full name) to class."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf.message import Message as ProtoMessage

from .errors import UnknownKind

ProtoClass = type[ProtoMessage]


def kind_of(message_or_class: ProtoMessage | ProtoClass) -> str:
    """Return the kind (protobuf full name) of a message or class.

    For example ``goomerang.example.MessageV1``.
    """
    descriptor: Any = message_or_class.DESCRIPTOR
    return str(descriptor.full_name)


class Registry:
    """Maps kind strings to protobuf message classes.

    The receiving side looks every frame's ``kind`` up here; a kind that is not
    registered is reported as :class:`~goomerang_proto.errors.UnknownKind`.
    """

    __slots__ = ("_classes",)

    def __init__(self, *classes: ProtoClass) -> None:
        self._classes: dict[str, ProtoClass] = {}
        for cls in classes:
            self.register(cls)

    def register(self, cls: ProtoClass) -> str:
        """Register ``cls`` and return its kind. Registering the same class twice is harmless."""
        if not (isinstance(cls, type) and issubclass(cls, ProtoMessage)):
            raise TypeError(f"expected a protobuf message class, got {cls!r}")
        kind = kind_of(cls)
        self._classes[kind] = cls
        return kind

    def get(self, kind: str) -> ProtoClass | None:
        """The class registered for ``kind``, or None."""
        return self._classes.get(kind)

    @property
    def table(self) -> dict[str, ProtoClass]:
        """The kind -> class dict itself (read-only use: the engine's hot path)."""
        return self._classes

    def lookup(self, kind: str) -> ProtoClass:
        """The class registered for ``kind``; raise UnknownKind when there is none."""
        cls = self._classes.get(kind)
        if cls is None:
            raise UnknownKind(kind)
        return cls

    def __contains__(self, kind: object) -> bool:
        return kind in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def copy(self) -> Registry:
        """An independent copy of this registry."""
        other = Registry()
        other._classes.update(self._classes)
        return other
