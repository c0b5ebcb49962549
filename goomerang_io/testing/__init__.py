"""goomerang_io.testing: a real server and clients for tests, and the pytest plugin.

* :class:`ServerThread`: a started ``goomerang_io.Server`` on a free loopback
  port, on its own event loop in a background thread, usable from plain
  (blocking) tests;
* :mod:`goomerang_io.testing.plugin`: the pytest plugin (entry point
  ``pytest11: goomerang``) with the fixtures ``goomerang_setup``,
  ``goomerang_server_options``, ``goomerang_pair``, ``goomerang_server`` and
  ``goomerang_client``.

The in-memory pair and the hypothesis strategies are engine-side, in
:mod:`goomerang_proto.testing`.
"""

from .server import ServerThread

__all__ = ["ServerThread"]
