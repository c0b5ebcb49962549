"""Packaging: pure Python by default; ``GOOMERANG_COMPILE=1`` compiles the per-message modules.

``pip install .`` builds a pure-Python package and needs no compiler. With
``GOOMERANG_COMPILE=1 pip install .`` the modules in ``COMPILED`` are compiled
to C extensions with mypyc (what black and mypy ship): that needs a C
compiler and the Python headers (``scripts/ensure-cc.sh`` says what is
missing); mypy (mypyc) is added to the isolated build environment as a
build requirement. The compiled modules behave like the pure ones, but their
classes cannot be monkeypatched or subclassed from Python, so only internals
are compiled (the engine's, the asyncio server protocol, ``Connection`` with
interpreted subclasses allowed): never ``Message``, ``Sender``, the events, the
errors, the router, the registry, ``Server``/``Client`` or the testing kit.
Everything else stays in the project metadata
(``pyproject.toml``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

COMPILED = (
    "goomerang_proto.frames",
    "goomerang_proto.codec",
    "goomerang_proto.envelope",
    "goomerang_proto.deadlines",
    "goomerang_proto.flow",
    "goomerang_proto.output",
    "goomerang_proto.connection",
    "goomerang_proto.server_connection",
    "goomerang_proto.client_connection",
    "goomerang_proto.handshake",
    "goomerang_io.asyncio.connection",
    "goomerang_io.asyncio.server_protocol",
    "goomerang_io.asyncio.dispatch",
)
"""The modules on the per-message path, compiled by mypyc: the engine's, and the asyncio
server's protocol, its base ``Connection`` (interpreted subclasses allowed: the client's
protocol and embedders subclass it) and its handler runner. None of them is public API."""
MYPY = "mypy>=1.10"


def runtime_dependencies() -> tuple[str, ...]:
    """``project.dependencies`` of ``pyproject.toml`` (beside this file)."""
    import tomllib

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "pyproject.toml"), "rb") as f:
        return tuple(tomllib.load(f)["project"]["dependencies"])


BUILD_REQUIRES = (MYPY, "types-protobuf", *runtime_dependencies())
"""What a compiled build installs into its isolated build environment: mypyc, the
protobuf stubs, and the package's own dependencies: mypy types the compiled modules
against what they import (redis, prometheus_client, uvloop...) and stops when one is missing."""


def compiling() -> bool:
    """True when ``GOOMERANG_COMPILE`` asks for the compiled build (anything but '', '0')."""
    return os.environ.get("GOOMERANG_COMPILE", "") not in ("", "0")


ACCELERATORS = ("_mask", "_timestamp", "_alloc")
"""Hand-written C modules (``goomerang_proto/NAME.c``) built with the compiled engine only,
each with a pure-Python fallback: ``_mask`` is RFC 6455 masking (for ``frames``),
``_timestamp`` the envelope's creation field (for ``codec``), ``_alloc`` instances
without their ``__init__`` call (for ``instances``)."""


def compiled_extensions(package_root: str = ".") -> list[Any]:
    """The mypyc extensions of ``COMPILED`` and the C ``ACCELERATORS``.

    ``package_root`` holds ``goomerang_proto/`` and ``goomerang_io/``.
    """
    from mypyc.build import mypycify
    from setuptools import Extension

    paths = [os.path.join(package_root, *name.split(".")) + ".py" for name in COMPILED]
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
    try:
        setup(ext_modules=ext_modules, setup_requires=list(BUILD_REQUIRES))
    except SystemExit as exc:
        # setuptools ends a failed compiler run with SystemExit("error: command ... failed");
        # say what the compiled build needs (mypyc's own type errors come earlier)
        if ext_modules and isinstance(exc.code, str) and exc.code.startswith("error:"):
            raise SystemExit(f"{exc.code}\n{COMPILER_HINT}") from None
        raise


COMPILER_HINT = (
    "GOOMERANG_COMPILE=1: building the C extensions failed. The compiled build needs a C "
    "compiler and the Python headers (Debian: apt-get install gcc python3-dev; "
    "scripts/ensure-cc.sh in the source tree checks them); or build without "
    "GOOMERANG_COMPILE for the pure-Python package."
)


if __name__ == "__main__":
    _main()
