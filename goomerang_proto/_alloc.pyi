"""Instances without their __init__ call in C (``_alloc.c``): built with the compiled
engine, absent when pure."""

from typing import TypeVar

T = TypeVar("T")

def new_instance(cls: type[T], /) -> T:
    """``object.__new__(cls)`` for a class that keeps object's ``__new__``."""
