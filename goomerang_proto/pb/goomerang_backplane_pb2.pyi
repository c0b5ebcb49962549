from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Envelope(_message.Message):
    __slots__ = ("origin", "topic", "kind", "frame", "op", "group", "groups", "groups_only")
    class Op(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DELIVER: _ClassVar[Envelope.Op]
        HELLO: _ClassVar[Envelope.Op]
        SUBSCRIBE: _ClassVar[Envelope.Op]
        UNSUBSCRIBE: _ClassVar[Envelope.Op]
        JOIN: _ClassVar[Envelope.Op]
        LEAVE: _ClassVar[Envelope.Op]
    DELIVER: Envelope.Op
    HELLO: Envelope.Op
    SUBSCRIBE: Envelope.Op
    UNSUBSCRIBE: Envelope.Op
    JOIN: Envelope.Op
    LEAVE: Envelope.Op
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_ONLY_FIELD_NUMBER: _ClassVar[int]
    origin: str
    topic: str
    kind: str
    frame: bytes
    op: Envelope.Op
    group: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    groups_only: bool
    def __init__(self, origin: _Optional[str] = ..., topic: _Optional[str] = ..., kind: _Optional[str] = ..., frame: _Optional[bytes] = ..., op: _Optional[_Union[Envelope.Op, str]] = ..., group: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ..., groups_only: _Optional[bool] = ...) -> None: ...
