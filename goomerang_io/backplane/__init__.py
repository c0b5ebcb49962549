"""Backplanes: carry broadcast and publish to the clients of every node.

* ``LocalHub`` + ``LocalBackplane``: the embedded default for one machine
  (worker processes relay through a hub in the supervisor, over a Unix
  domain socket; no external service).
* ``RedisBackplane``: Redis pub/sub, for several machines or several
  independent server processes.
* ``RedisClusterBackplane``: Redis Cluster sharded pub/sub (Redis 7), so
  topics spread over the shards (``rediscluster://host:port[,host:port]``).

Delivery across nodes is **at most once**: see ``base`` for the details.
"""

from __future__ import annotations

from .base import (
    Backplane,
    BackplaneError,
    BackplaneMessage,
    BackplaneProtocolError,
    BackplaneUnavailable,
)
from .hub import LocalHub
from .local import LocalBackplane

__all__ = [
    "Backplane",
    "BackplaneError",
    "BackplaneMessage",
    "BackplaneProtocolError",
    "BackplaneUnavailable",
    "LocalBackplane",
    "LocalHub",
    "RedisBackplane",
    "RedisClusterBackplane",
    "backplane_from_url",
]


def backplane_from_url(url: str | None, *, hub_path: str | None = None) -> Backplane | None:
    """Build the backplane a server asked for.

    ``"redis://..."``/``"rediss://..."`` -> ``RedisBackplane``; ``None`` with
    ``hub_path`` (a worker of a multi-process server) -> ``LocalBackplane``;
    ``None`` without -> ``None`` (a single process needs no backplane).
    Anything else raises ``ValueError`` naming the accepted forms.
    """
    if url is None:
        return LocalBackplane(hub_path) if hub_path is not None else None
    if url.startswith("rediscluster://"):
        from .redis_cluster import RedisClusterBackplane

        return RedisClusterBackplane(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisBackplane

        return RedisBackplane(url)
    if url in ("local", "embedded"):
        if hub_path is None:
            raise ValueError(
                "backplane='local' needs the embedded hub of a multi-process server (workers > 1)"
            )
        return LocalBackplane(hub_path)
    raise ValueError(
        f"unknown backplane {url!r}: use None (embedded, for workers on one machine) "
        "or 'redis://host:port/db' or 'rediscluster://host:port[,host:port]'"
    )


def __getattr__(name: str) -> object:
    # RedisBackplane is imported lazily so that `import goomerang_io.backplane`
    # does not import redis-py unless it is used.
    if name == "RedisBackplane":
        from .redis import RedisBackplane

        return RedisBackplane
    if name == "RedisClusterBackplane":
        from .redis_cluster import RedisClusterBackplane

        return RedisClusterBackplane
    raise AttributeError(name)
