"""``goomerang_proto.instances.new_instance``: ``object.__new__`` in the pure build,
the C function of ``_alloc.c`` in the compiled one (``compiled_only`` tests; ``make
unit-compiled`` runs them, ``make unit`` deselects them). Both must give what
``object.__new__`` gives: an instance of the class with its slots unset, tracked by
the cyclic GC, and refuse what it refuses.
"""

from __future__ import annotations

import abc
import gc
import importlib

import pytest

from goomerang_proto import events
from goomerang_proto.instances import new_instance
from goomerang_proto.message import Message

compiled_only = pytest.mark.compiled_only


class Slotted:
    __slots__ = ("a", "b")


class OwnNew:
    def __new__(cls) -> OwnNew:
        return super().__new__(cls)


class Abstract(abc.ABC):
    @abc.abstractmethod
    def f(self) -> None: ...


@pytest.mark.parametrize("cls", [Slotted, Message, events.MessageReceived])
def test_new_instance_is_object_new(cls: type) -> None:
    obj = new_instance(cls)
    assert type(obj) is cls
    assert gc.is_tracked(obj) == gc.is_tracked(object.__new__(cls))
    slot = cls.__slots__[0]
    with pytest.raises(AttributeError):
        getattr(obj, slot)  # unset, as object.__new__ leaves it
    setattr(obj, slot, [obj])  # a cycle through a slot: the GC must see it
    del obj
    gc.collect()


def test_new_instance_refuses_what_object_new_refuses() -> None:
    with pytest.raises(TypeError):
        new_instance(Abstract)
    with pytest.raises(TypeError):
        new_instance(42)  # type: ignore[arg-type]


@compiled_only
def test_instances_use_the_accelerator() -> None:
    assert new_instance is importlib.import_module("goomerang_proto._alloc").new_instance


@compiled_only
def test_accelerator_refuses_a_class_with_its_own_new() -> None:
    """object.__new__ would build one (skipping OwnNew.__new__); the C helper says no."""
    with pytest.raises(TypeError, match="its own __new__"):
        new_instance(OwnNew)
