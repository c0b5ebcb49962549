"""Engine connections keep their state in ``__slots__``, not in an instance dict.

Why it matters: CPython 3.11 specialises ``self.method()`` calls only for
objects whose instance dict has not been materialised, and a class's shared
keys hold at most 30 attributes; the engine has more, so without slots every
method call on it took the generic lookup (measured: about 10% of the
100-connection request/response rate, see benchmarks/README.md).
"""

from __future__ import annotations

import pytest

from goomerang_proto import ClientConnection, ServerConnection
from goomerang_proto.testing import Pair


@pytest.mark.timeout(10)
@pytest.mark.parametrize("make", [ServerConnection, lambda: ClientConnection("127.0.0.1:1")])
def test_a_new_engine_connection_has_no_instance_dict(make: object) -> None:
    conn = make()  # type: ignore[operator]
    assert not hasattr(conn, "__dict__")
    with pytest.raises(AttributeError):
        conn.not_an_attribute = 1


@pytest.mark.timeout(10)
def test_a_connection_that_ran_a_session_still_has_no_instance_dict() -> None:
    pair = Pair()
    pair.run()
    for conn in (pair.client.conn, pair.client.server_conn):
        assert conn is not None and not hasattr(conn, "__dict__")
