"""Packaging: pure Python by default; ``GOOMERANG_COMPILE=1`` compiles the engine's hot modules.

``pip install .`` builds a pure-Python package and needs no compiler. With
``GOOMERANG_COMPILE=1 pip install .`` the modules in ``COMPILED`` are compiled
to C extensions with mypyc (what black and mypy ship): that needs a C
compiler and the Python headers (``scripts/ensure-cc.sh`` says what is
missing); mypy (mypyc) is added to the isolated build environment as a
build requirement. The compiled modules behave like the pure ones, but their
classes cannot be monkeypatched or subclassed from Python, so only engine
internals are compiled: never ``Message``, the events, the errors, the router,
the registry or the testing kit. Everything else stays in the project metadata
(``pyproject.toml``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

COMPILED = (
    "frames",
    "codec",
    "envelope",
    "deadlines",
    "flow",
    "output",
    "connection",
    "server_connection",
    "client_connection",
    "handshake",
)
"""The engine modules on the per-message path, compiled by mypyc (``goomerang_proto/NAME.py``)."""
MYPY = "mypy>=1.10"
BUILD_REQUIRES = (MYPY, "types-protobuf")
"""What a compiled build installs into its isolated build environment: mypyc, and the
protobuf stubs that mypy needs to type the engine (without them it stops)."""


def compiling() -> bool:
    """True when ``GOOMERANG_COMPILE`` asks for the compiled build (anything but '', '0')."""
    return os.environ.get("GOOMERANG_COMPILE", "") not in ("", "0")


ACCELERATORS = ("_mask",)
"""Hand-written C modules (``goomerang_proto/NAME.c``) built with the compiled engine only:
``_mask`` is RFC 6455 masking (``frames`` falls back to pure Python without it)."""


def compiled_extensions(package_root: str = ".") -> list[Any]:
    """The mypyc extensions of ``COMPILED`` and the C ``ACCELERATORS``.

    ``package_root`` holds ``goomerang_proto/``.
    """
    from mypyc.build import mypycify
    from setuptools import Extension

    paths = [os.path.join(package_root, "goomerang_proto", f"{name}.py") for name in COMPILED]
    accelerators = [
        Extension(
            f"goomerang_proto.{name}",
            [os.path.join(package_root, "goomerang_proto", f"{name}.c")],
            extra_compile_args=["-O2"],
        )
        for name in ACCELERATORS
    ]
    return [*mypycify(paths, opt_level="3", group_name="goomerang_proto"), *accelerators]


def _main() -> None:
    from setuptools import setup

    if not compiling():
        setup()
        return
    try:
        ext_modules = compiled_extensions()
    except ImportError:
        # First pass of a PEP 517 build: setup() raises with setup_requires so that the
        # build frontend installs mypy and runs this file again. Anything else is an error.
        if "egg_info" not in sys.argv and "dist_info" not in sys.argv:
            raise SystemExit(
                "GOOMERANG_COMPILE=1: mypyc (the mypy package) is missing from the build "
                f"environment; install {MYPY!r} or build without GOOMERANG_COMPILE"
            ) from None
        ext_modules = []
    setup(ext_modules=ext_modules, setup_requires=list(BUILD_REQUIRES))


if __name__ == "__main__":
    _main()
