"""The metric families of Go goomerang v0.3.0: names, types, help, labels, buckets."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

#: Go's ``prometheus.DefBuckets`` (prometheus_client's default has three more).
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


#: Go goomerang's ``defBucketsForSizeBytes``.
DEFAULT_SIZE_BUCKETS: tuple[float, ...] = (
    10,
    20,
    40,
    80,
    160,
    320,
    640,
    1280,
    2560,
    5120,
    10240,
    50000,
)

FamilyType = Literal["histogram", "counter", "gauge"]
GaugeMode = Literal["livemax", "livemin", "livesum"]


@dataclass(frozen=True)
class Family:
    """One exposed metric family.

    ``name`` is the exposed name, counters without their ``_total`` suffix
    (the exposition adds it, as Go's client does). Histograms have
    ``buckets``, the finite upper bounds in increasing order (``+Inf`` is
    implied). Gauges have ``mode``, how the values of several worker
    processes merge (``livesum``, ``livemax``, ``livemin``: over the live
    workers only), and ``settable``: set (last value wins within a process)
    rather than moved up and down (summed over the recorders of a process).
    """

    name: str
    type: FamilyType
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    mode: GaugeMode = "livesum"
    settable: bool = False

    def width(self) -> int:
        """Values one series holds: histograms a count per bucket (``+Inf`` last) and the sum."""
        return len(self.buckets) + 2 if self.type == "histogram" else 1


def check_buckets(given: Sequence[float] | None, default: tuple[float, ...]) -> tuple[float, ...]:
    """``given`` as a tuple of floats (``default`` when None).

    Raises ValueError unless it is a non-empty, strictly increasing sequence of
    finite numbers (Go's client and prometheus_client refuse the same); a
    trailing ``+Inf`` is dropped (the ``+Inf`` bucket is always there).
    """
    if given is None:
        return default
    out = tuple(float(b) for b in given)
    if out and out[-1] == math.inf:
        out = out[:-1]
    if (
        not out
        or any(not math.isfinite(b) for b in out)
        or any(a >= b for a, b in itertools.pairwise(out))
    ):
        raise ValueError(f"buckets must be a non-empty increasing sequence, got {list(given)!r}")
    return out


def go_float(value: float) -> str:
    """A bucket bound as the ``le`` label value, formatted as Go's client and prometheus_client do.

    ``+Inf``/``-Inf``/``NaN`` by name; otherwise Python's shortest repr, except
    that positive numbers of 7 or more integer digits use an exponent
    (``1e7`` gives ``1e+07``, as Go's ``strconv.FormatFloat(f, 'g', -1, 64)``
    on the values Prometheus buckets take).
    """
    value = float(value)
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0").rstrip(".")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


_INFLIGHT_HELP = "The time the message spent over the wire till received"
_RECEIVED_SIZE_HELP = "The size of the received messages in bytes"
_SENT_SIZE_HELP = "The size of the sent messages in bytes"
_SENT_TIME_HELP = "The time spent in during asynchronous message sending operation (buffer)"
_PROCESSING_HELP = "The time spent in message handler execution"
_STATUS_HELP = "The current status of the {} (0 => New, 1 => Running, 2=> Closing, 3 => closed)"


def common_families(
    prefix: str, side: str, size: tuple[float, ...], duration: tuple[float, ...]
) -> dict[str, Family]:
    """The families both sides have (``prefix``: ``<namespace>_<side>``), by recorder attribute."""
    p, kind = prefix, ("kind",)
    return {
        "inflight": Family(
            f"{p}_message_received_inflight_duration_seconds",
            "histogram",
            _INFLIGHT_HELP,
            kind,
            duration,
        ),
        "received_size": Family(
            f"{p}_message_received_size_bytes", "histogram", _RECEIVED_SIZE_HELP, kind, size
        ),
        "sent_size": Family(
            f"{p}_message_sent_size_bytes", "histogram", _SENT_SIZE_HELP, kind, size
        ),
        "sent_duration": Family(
            f"{p}_message_sent_duration_seconds", "histogram", _SENT_TIME_HELP, kind, duration
        ),
        "processing": Family(
            f"{p}_message_processing_duration_seconds",
            "histogram",
            _PROCESSING_HELP,
            kind,
            duration,
        ),
        "status": Family(
            f"{p}_status", "gauge", _STATUS_HELP.format(side), mode="livemax", settable=True
        ),
        "concurrent_workers": Family(
            f"{p}_concurrent_workers",
            "gauge",
            f"The current number of running workers in the {side}",
        ),
        "config_max_concurrency": Family(
            f"{p}_config_max_concurrency",
            "gauge",
            f"The configured maximum number of parallel workers in the {side}",
            settable=True,
        ),
        "errors": Family(f"{p}_errors", "counter", f"The errors happened in {side}"),
    }


def server_families(prefix: str, namespace: str, duration: tuple[float, ...]) -> dict[str, Family]:
    """The families only the server has; the last four appear on first use."""
    p, ns = prefix, namespace
    return {
        "broadcast_duration": Family(
            f"{p}_message_broadcast_sent_duration_seconds",
            "histogram",
            "The time spent in a broadcast operation",
            ("kind",),
            duration,
        ),
        "broadcast_client": Family(
            f"{p}_broadcast_client",
            "counter",
            "The number of successful broadcast commands processed by the server "
            "(requested from client side).",
            ("message",),
        ),
        "pubsub_subscribe": Family(
            f"{ns}_server_pubsub_subscribe",
            "counter",
            "The number of successful subscribe commands processed by the server.",
            ("topic",),
        ),
        "pubsub_publish": Family(
            f"{ns}_server_pubsub_publish",
            "counter",
            "The number of successful publish commands processed by the server.",
            ("topic", "message"),
        ),
        "pubsub_unsubscribe": Family(
            f"{ns}_server_pubsub_unsubscribe",
            "counter",
            "The number of successful unsubscribe commands processed by the server.",
            ("topic",),
        ),
        "connections_open": Family(
            f"{p}_connections_open",
            "gauge",
            "The number of WebSocket connections currently open on the server",
        ),
    }


def server_lazy_families(prefix: str, max_group_labels: int) -> dict[str, Family]:
    """Server families exposed only once used: no backplane or queue group, no series."""
    p = prefix
    return {
        "backplane_up": Family(
            f"{p}_backplane_up",
            "gauge",
            "1 when the backplane (cross-worker broadcast and publish) is connected, else 0",
            mode="livemin",
            settable=True,
        ),
        "backplane_dropped": Family(
            f"{p}_backplane_dropped",
            "counter",
            "Broadcasts and publishes not relayed to the other workers or nodes "
            "(backplane down, or its byte bound reached)",
        ),
        "group_deliveries": Family(
            f"{p}_group_deliveries",
            "counter",
            "Messages written to one member of a queue group (label set bounded: "
            f"{max_group_labels} group names, then _other)",
            ("group",),
        ),
        "group_drops": Family(
            f"{p}_group_drops",
            "counter",
            "Messages for a queue group dropped because no member could take them",
            ("group",),
        ),
    }


def client_families(prefix: str, namespace: str, duration: tuple[float, ...]) -> dict[str, Family]:
    """The families only the client has."""
    p, ns = prefix, namespace
    return {
        "sync_duration": Family(
            f"{p}_message_sent_sync_duration_seconds",
            "histogram",
            "The time spent in a synchronous message sending operation",
            ("kind",),
            duration,
        ),
        "broadcast_cmd": Family(
            f"{p}_broadcast_cmd_sent",
            "counter",
            "The number of broadcast commands sent by the client to the server.",
            ("message",),
        ),
        "subscribe_cmd": Family(
            f"{ns}_client_pubsub_subscribe_cmd_sent",
            "counter",
            "The number of subscribe commands sent by the client to the server.",
            ("topic",),
        ),
        "publish_cmd": Family(
            f"{ns}_client_pubsub_publish_cmd_sent",
            "counter",
            "The number of publish commands sent by the client to the server.",
            ("topic", "message"),
        ),
        "unsubscribe_cmd": Family(
            f"{ns}_client_pubsub_unsubscribe_cmd_sent",
            "counter",
            "The number of unsubscribe commands sent by the client to the server.",
            ("topic",),
        ),
    }
