"""Instances built without their ``__init__`` call, for the per-message objects.

The engine builds each received ``Message`` and its event, and the asyncio
server each sync request's ``Sender``, by setting their ``__slots__`` on
``new_instance(cls)``: the ``__init__`` call (a Python frame) is the dearest part
of building them. ``new_instance`` is ``object.__new__``, or in the compiled
build (``setup.ACCELERATORS``) the C function of ``_alloc.c``, which does the same
without the argument tuple. Only for plain ``__slots__`` classes that keep
object's ``__new__``: the C function refuses a class with a ``__new__`` of its own
(TypeError), where ``object.__new__`` would skip it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

T = TypeVar("T")

if TYPE_CHECKING:

    def new_instance(cls: type[T], /) -> T:
        """A new instance of ``cls`` whose ``__init__`` has not run (its slots unset)."""

else:
    try:
        from ._alloc import new_instance
    except ImportError:  # a pure-Python install
        new_instance = object.__new__

__all__ = ["new_instance"]
