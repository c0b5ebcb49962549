"""goomerang_proto.testing: test your handlers and peers against the goomerang protocol.

Importable without hypothesis:

* :class:`Pair`: an in-memory server and clients over the engine, with a
  :class:`VirtualClock` (``pair.run()``, ``pair.advance(seconds)``);
* :mod:`goomerang_proto.testing.wire`: handshake bytes and a frame decoder
  for checking what a connection wrote.

With ``pip install goomerang[testing]`` (hypothesis):

* :mod:`goomerang_proto.testing.strategies`: messages of your protobuf
  classes, headers, envelopes, WebSocket frames, arbitrary reads;
* :mod:`goomerang_proto.testing.machine`: :class:`HandlerMachine`, a
  ``RuleBasedStateMachine`` to subclass for property tests of your handlers.

No IO here (the engine's import contract applies): sockets and servers for
tests live in ``goomerang_io.testing``.
"""

from .clock import VirtualClock
from .endpoints import PairClient, PairSender, PairServer
from .pair import Pair
from .runner import Done, drive

__all__ = ["Done", "Pair", "PairClient", "PairSender", "PairServer", "VirtualClock", "drive"]
