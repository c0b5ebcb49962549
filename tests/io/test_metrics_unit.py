"""ServerMetrics / ClientMetrics: Go names, exact sample values, registries, multiprocess mode."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from goomerang_io import metrics as gm
from goomerang_io.metrics import (
    DEFAULT_DURATION_BUCKETS,
    DEFAULT_SIZE_BUCKETS,
    ClientMetrics,
    ServerMetrics,
    metrics_http_response,
)

ROOT = Path(__file__).resolve().parents[2]
RENDER = ROOT / "dashboard" / "render.py"

# Exposed family name -> (type, labels, help), exactly as Go goomerang v0.3.0
# (metrics/server.go, metrics/client.go), plus our two server gauges.
S, C = "goomerang_server_", "goomerang_client_"
GO_SERVER: dict[str, tuple[str, tuple[str, ...], str]] = {
    S + "message_received_inflight_duration_seconds": (
        "histogram",
        ("kind",),
        "The time the message spent over the wire till received",
    ),
    S + "message_received_size_bytes": (
        "histogram",
        ("kind",),
        "The size of the received messages in bytes",
    ),
    S + "message_sent_size_bytes": (
        "histogram",
        ("kind",),
        "The size of the sent messages in bytes",
    ),
    S + "message_sent_duration_seconds": (
        "histogram",
        ("kind",),
        "The time spent in during asynchronous message sending operation (buffer)",
    ),
    S + "message_processing_duration_seconds": (
        "histogram",
        ("kind",),
        "The time spent in message handler execution",
    ),
    S + "message_broadcast_sent_duration_seconds": (
        "histogram",
        ("kind",),
        "The time spent in a broadcast operation",
    ),
    S + "status": (
        "gauge",
        (),
        "The current status of the server (0 => New, 1 => Running, 2=> Closing, 3 => closed)",
    ),
    S + "concurrent_workers": (
        "gauge",
        (),
        "The current number of running workers in the server",
    ),
    S + "config_max_concurrency": (
        "gauge",
        (),
        "The configured maximum number of parallel workers in the server",
    ),
    S + "broadcast_client_total": (
        "counter",
        ("message",),
        "The number of successful broadcast commands processed by the server "
        "(requested from client side).",
    ),
    S + "pubsub_subscribe_total": (
        "counter",
        ("topic",),
        "The number of successful subscribe commands processed by the server.",
    ),
    S + "pubsub_publish_total": (
        "counter",
        ("topic", "message"),
        "The number of successful publish commands processed by the server.",
    ),
    S + "pubsub_unsubscribe_total": (
        "counter",
        ("topic",),
        "The number of successful unsubscribe commands processed by the server.",
    ),
    S + "errors_total": ("counter", (), "The errors happened in server"),
}
OURS_SERVER = {S + "connections_open": "gauge", S + "backplane_up": "gauge"}
GO_CLIENT: dict[str, tuple[str, tuple[str, ...], str]] = {
    C + "message_received_inflight_duration_seconds": (
        "histogram",
        ("kind",),
        "The time the message spent over the wire till received",
    ),
    C + "message_received_size_bytes": (
        "histogram",
        ("kind",),
        "The size of the received messages in bytes",
    ),
    C + "message_sent_size_bytes": (
        "histogram",
        ("kind",),
        "The size of the sent messages in bytes",
    ),
    C + "message_sent_duration_seconds": (
        "histogram",
        ("kind",),
        "The time spent in during asynchronous message sending operation (buffer)",
    ),
    C + "message_processing_duration_seconds": (
        "histogram",
        ("kind",),
        "The time spent in message handler execution",
    ),
    C + "message_sent_sync_duration_seconds": (
        "histogram",
        ("kind",),
        "The time spent in a synchronous message sending operation",
    ),
    C + "status": (
        "gauge",
        (),
        "The current status of the client (0 => New, 1 => Running, 2=> Closing, 3 => closed)",
    ),
    C + "concurrent_workers": (
        "gauge",
        (),
        "The current number of running workers in the client",
    ),
    C + "config_max_concurrency": (
        "gauge",
        (),
        "The configured maximum number of parallel workers in the client",
    ),
    C + "broadcast_cmd_sent_total": (
        "counter",
        ("message",),
        "The number of broadcast commands sent by the client to the server.",
    ),
    C + "pubsub_subscribe_cmd_sent_total": (
        "counter",
        ("topic",),
        "The number of subscribe commands sent by the client to the server.",
    ),
    C + "pubsub_publish_cmd_sent_total": (
        "counter",
        ("topic", "message"),
        "The number of publish commands sent by the client to the server.",
    ),
    C + "pubsub_unsubscribe_cmd_sent_total": (
        "counter",
        ("topic",),
        "The number of unsubscribe commands sent by the client to the server.",
    ),
    C + "errors_total": ("counter", (), "The errors happened in client"),
}

K = "goomerang.example.MessageV1"


def _families(text: str) -> dict[str, tuple[str, str]]:
    """Exposed ``# TYPE``/``# HELP`` lines: name -> (type, help), like Prometheus sees them."""
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, typ = line[7:].split(" ", 1)
            types[name] = typ
        elif line.startswith("# HELP "):
            name, text_ = line[7:].split(" ", 1)
            helps[name] = text_
    return {n: (t, helps.get(n, "")) for n, t in types.items()}


def _exercise_server(m: ServerMetrics) -> None:
    m.message_received(K, 7, 0.002)
    m.message_processed(K, 0.03)
    m.message_sent(K, 30, 0.0001)
    m.broadcast_sent(K, 0.2)
    m.client_broadcast(K)
    m.subscribed("t1")
    m.published("t1", K)
    m.unsubscribed("t1")
    m.error()
    m.set_status(1)
    m.set_max_concurrency(4)
    m.worker_started()
    m.connection_opened()
    m.set_backplane_up(True)


def _exercise_client(m: ClientMetrics) -> None:
    m.message_received(K, 7, 0.002)
    m.message_processed(K, 0.03)
    m.message_sent(K, 30, 0.0001)
    m.sync_sent(K, 0.04)
    m.broadcast_cmd_sent(K)
    m.subscribe_cmd_sent("t1")
    m.publish_cmd_sent("t1", K)
    m.unsubscribe_cmd_sent("t1")
    m.error()
    m.set_status(1)
    m.set_max_concurrency(4)
    m.worker_started()


def _sample_labels(text: str) -> dict[str, set[tuple[str, ...]]]:
    """Family name (as exposed, counters with _total) -> label-name sets of its samples."""
    out: dict[str, set[tuple[str, ...]]] = {}
    for fam in text_string_to_metric_families(text):
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            labels = tuple(sorted(k for k in s.labels if k != "le"))
            out.setdefault(name, set()).add(labels)
    return out


def test_server_families_match_go_exactly() -> None:
    reg = CollectorRegistry()
    _exercise_server(ServerMetrics(registry=reg))
    _, _, body = metrics_http_response(reg)
    text = body.decode()
    fams = _families(text)
    for name, (typ, _labels, help_) in GO_SERVER.items():
        assert fams.get(name) == (typ, help_), name
    for name, typ in OURS_SERVER.items():
        assert fams[name][0] == typ
    exposed = {n for n in fams if not n.endswith("_created")}
    assert exposed == set(GO_SERVER) | set(OURS_SERVER)
    labels = _sample_labels(text)
    for name, (_typ, want, _help) in GO_SERVER.items():
        assert labels[name] == {tuple(sorted(want))}, name


def test_client_families_match_go_exactly() -> None:
    reg = CollectorRegistry()
    _exercise_client(ClientMetrics(registry=reg))
    text = metrics_http_response(reg)[2].decode()
    fams = _families(text)
    for name, (typ, _labels, help_) in GO_CLIENT.items():
        assert fams.get(name) == (typ, help_), name
    assert {n for n in fams if not n.endswith("_created")} == set(GO_CLIENT)
    labels = _sample_labels(text)
    for name, (_typ, want, _help) in GO_CLIENT.items():
        assert labels[name] == {tuple(sorted(want))}, name


def test_server_sample_values() -> None:
    reg = CollectorRegistry()
    m = ServerMetrics(registry=reg)
    v = reg.get_sample_value
    m.message_received(K, 7, 0.002)
    m.message_received(K, 100, 0.3)
    m.message_received(K, 9, None)  # no creation time: size only
    assert v(S + "message_received_size_bytes_count", {"kind": K}) == 3
    assert v(S + "message_received_size_bytes_sum", {"kind": K}) == 116
    assert v(S + "message_received_size_bytes_bucket", {"kind": K, "le": "10.0"}) == 2
    assert v(S + "message_received_size_bytes_bucket", {"kind": K, "le": "80.0"}) == 2
    assert v(S + "message_received_size_bytes_bucket", {"kind": K, "le": "160.0"}) == 3
    assert v(S + "message_received_inflight_duration_seconds_count", {"kind": K}) == 2
    assert v(S + "message_received_inflight_duration_seconds_sum", {"kind": K}) == pytest.approx(
        0.302
    )
    m.message_received(K, 1, -5.0)  # clock skew: counted as 0
    assert (
        v(S + "message_received_inflight_duration_seconds_bucket", {"kind": K, "le": "0.005"}) == 2
    )
    m.message_processed(K, 0.03)
    assert v(S + "message_processing_duration_seconds_bucket", {"kind": K, "le": "0.025"}) == 0
    assert v(S + "message_processing_duration_seconds_bucket", {"kind": K, "le": "0.05"}) == 1
    m.message_sent(K, 30, 0.0001)
    assert v(S + "message_sent_size_bytes_sum", {"kind": K}) == 30
    assert v(S + "message_sent_duration_seconds_count", {"kind": K}) == 1
    m.broadcast_sent(K, 0.2)
    assert v(S + "message_broadcast_sent_duration_seconds_sum", {"kind": K}) == pytest.approx(0.2)
    m.client_broadcast(K)
    m.client_broadcast(K)
    assert v(S + "broadcast_client_total", {"message": K}) == 2
    m.subscribed("t1")
    m.published("t1", K)
    m.published("t1", K)
    m.published("t2", K)
    m.unsubscribed("t1")
    assert v(S + "pubsub_subscribe_total", {"topic": "t1"}) == 1
    assert v(S + "pubsub_publish_total", {"topic": "t1", "message": K}) == 2
    assert v(S + "pubsub_publish_total", {"topic": "t2", "message": K}) == 1
    assert v(S + "pubsub_unsubscribe_total", {"topic": "t1"}) == 1
    m.error()
    assert v(S + "errors_total") == 1
    for status_value in (0, 1, 2, 3):
        m.set_status(status_value)
        assert v(S + "status") == status_value
    m.set_max_concurrency(8)
    assert v(S + "config_max_concurrency") == 8
    m.worker_started()
    m.worker_started()
    m.worker_finished()
    assert v(S + "concurrent_workers") == 1
    m.connection_opened()
    m.connection_opened()
    m.connection_closed()
    assert v(S + "connections_open") == 1
    assert v(S + "backplane_up") is None  # no backplane, no series
    m.set_backplane_up(True)
    assert v(S + "backplane_up") == 1
    m.set_backplane_up(False)
    assert v(S + "backplane_up") == 0


def test_client_sample_values() -> None:
    reg = CollectorRegistry()
    m = ClientMetrics(registry=reg)
    v = reg.get_sample_value
    m.sync_sent(K, 0.04)
    assert v(C + "message_sent_sync_duration_seconds_count", {"kind": K}) == 1
    assert v(C + "message_sent_size_bytes_count", {"kind": K}) is None
    m.sync_sent(K, 0.04, size=12)  # Go also observes the size of a sync request
    assert v(C + "message_sent_size_bytes_sum", {"kind": K}) == 12
    assert v(C + "message_sent_duration_seconds_count", {"kind": K}) is None
    m.broadcast_cmd_sent(K)
    m.subscribe_cmd_sent("a")
    m.publish_cmd_sent("a", K)
    m.unsubscribe_cmd_sent("a")
    m.unsubscribe_cmd_sent("a")
    assert v(C + "broadcast_cmd_sent_total", {"message": K}) == 1
    assert v(C + "pubsub_subscribe_cmd_sent_total", {"topic": "a"}) == 1
    assert v(C + "pubsub_publish_cmd_sent_total", {"topic": "a", "message": K}) == 1
    assert v(C + "pubsub_unsubscribe_cmd_sent_total", {"topic": "a"}) == 2
    m.message_received(K, 5, 0.001)
    m.message_processed(K, 0.001)
    m.message_sent(K, 5, 0.001)
    assert v(C + "message_received_size_bytes_count", {"kind": K}) == 1
    assert v(C + "message_processing_duration_seconds_count", {"kind": K}) == 1
    assert v(C + "message_sent_duration_seconds_count", {"kind": K}) == 1
    m.set_status(3)
    m.set_max_concurrency(2)
    m.worker_started()
    m.error()
    assert v(C + "status") == 3
    assert v(C + "config_max_concurrency") == 2
    assert v(C + "concurrent_workers") == 1
    assert v(C + "errors_total") == 1


def test_default_buckets_are_gos() -> None:
    reg = CollectorRegistry()
    ServerMetrics(registry=reg).message_received(K, 1, 0.0)
    text = metrics_http_response(reg)[2].decode()
    les: dict[str, list[float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.endswith("_bucket"):
                les.setdefault(fam.name, []).append(float(s.labels["le"]))
    assert les[S + "message_received_size_bytes"] == [*DEFAULT_SIZE_BUCKETS, float("inf")]
    assert les[S + "message_received_inflight_duration_seconds"] == [
        *DEFAULT_DURATION_BUCKETS,
        float("inf"),
    ]
    assert DEFAULT_DURATION_BUCKETS == (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
    assert DEFAULT_SIZE_BUCKETS == (10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 50000)


def test_custom_buckets() -> None:
    reg = CollectorRegistry()
    m = ServerMetrics(registry=reg, size_buckets=[100, 1000], duration_buckets=[0.5])
    m.message_received(K, 500, 0.7)
    m.broadcast_sent(K, 0.1)
    v = reg.get_sample_value
    assert v(S + "message_received_size_bytes_bucket", {"kind": K, "le": "100.0"}) == 0
    assert v(S + "message_received_size_bytes_bucket", {"kind": K, "le": "1000.0"}) == 1
    assert v(S + "message_received_size_bytes_bucket", {"kind": K, "le": "50000.0"}) is None
    assert v(S + "message_received_inflight_duration_seconds_bucket", {"kind": K, "le": "0.5"}) == 0
    assert v(S + "message_broadcast_sent_duration_seconds_bucket", {"kind": K, "le": "0.5"}) == 1
    with pytest.raises(ValueError, match="increasing"):
        ServerMetrics(registry=CollectorRegistry(), size_buckets=[5, 1])
    with pytest.raises(ValueError, match="increasing"):
        ClientMetrics(registry=CollectorRegistry(), duration_buckets=[])


def test_second_instance_on_same_registry_shares_collectors() -> None:
    reg = CollectorRegistry()
    a = ServerMetrics(registry=reg)
    b = ServerMetrics(registry=reg)
    a.error()
    b.error()
    a.client_broadcast(K)
    b.client_broadcast(K)
    assert reg.get_sample_value(S + "errors_total") == 2
    assert reg.get_sample_value(S + "broadcast_client_total", {"message": K}) == 2
    # server and client recorders live side by side on one registry
    ClientMetrics(registry=reg).error()
    assert reg.get_sample_value(C + "errors_total") == 1
    # a second instance asking for other buckets gets a clear error, not silent reuse
    with pytest.raises(ValueError, match="buckets"):
        ServerMetrics(registry=reg, size_buckets=[1, 2])


def test_default_registry_used_and_reused() -> None:
    from prometheus_client import REGISTRY

    a = ServerMetrics()
    b = ServerMetrics()  # would raise "Duplicated timeseries" without reuse
    assert a.registry is REGISTRY and b.registry is REGISTRY
    before = REGISTRY.get_sample_value(S + "errors_total") or 0.0
    b.error()
    assert REGISTRY.get_sample_value(S + "errors_total") == before + 1
    a.error()  # both feed the one series
    assert REGISTRY.get_sample_value(S + "errors_total") == before + 2
    assert metrics_http_response()[2].count(b"goomerang_server_errors_total") >= 1


def test_registry_name_taken_by_other_metric_type() -> None:
    reg = CollectorRegistry()
    Counter("goomerang_server_status", "someone else's", registry=reg)
    with pytest.raises(ValueError, match=r"already registered.*another registry or namespace"):
        ServerMetrics(registry=reg)
    ServerMetrics(registry=reg, namespace="other").set_status(1)  # the way out it names
    assert reg.get_sample_value("other_server_status") == 1


def test_namespace() -> None:
    reg = CollectorRegistry()
    ServerMetrics(registry=reg, namespace="acme").error()
    ClientMetrics(registry=reg, namespace="acme").publish_cmd_sent("t", K)
    assert reg.get_sample_value("acme_server_errors_total") == 1
    assert (
        reg.get_sample_value(
            "acme_client_pubsub_publish_cmd_sent_total", {"topic": "t", "message": K}
        )
        == 1
    )


def test_http_response_shape() -> None:
    reg = CollectorRegistry()
    ServerMetrics(registry=reg).error()
    status, headers, body = metrics_http_response(reg)
    assert status == 200
    assert dict(headers)["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"goomerang_server_errors_total 1.0" in body


def test_mark_worker_dead_without_multiprocess_is_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(gm.MULTIPROC_ENV, raising=False)
    gm.mark_worker_dead(123456)
    assert gm.multiprocess_enabled() is False


# ------------------------------------------------------------ multiprocess mode

_WORKER = textwrap.dedent(
    """
    import os, sys
    from goomerang_io.metrics import ServerMetrics
    m = ServerMetrics()
    n = int(sys.argv[1])
    for _ in range(n):
        m.message_received("k.K", 10, 0.001)
        m.error()
    m.published("t", "k.K")
    m.set_status(int(sys.argv[2]))
    m.set_max_concurrency(4)
    m.connection_opened()
    m.worker_started()
    m.set_backplane_up(sys.argv[3] == "1")
    print(os.getpid(), flush=True)
    """
)

# The supervisor: prepares the directory, forks two workers that write and
# exit, scrapes, marks one dead, scrapes again. prometheus_client is imported
# (through goomerang_io.metrics) before the directory is prepared, as it is in
# the real supervisor: the workers' snapshot files do not depend on the order.
_SUPERVISOR = textwrap.dedent(
    """
    import json, os, sys
    from goomerang_io import metrics as gm
    from prometheus_client.parser import text_string_to_metric_families

    path = gm.prepare_multiprocess_dir(sys.argv[1])

    def worker(n, status, up):
        pid = os.fork()
        if pid == 0:
            try:
                m = gm.ServerMetrics()
                for _ in range(n):
                    m.message_received("k.K", 10, 0.001)
                    m.error()
                m.published("t", "k.K")
                m.set_status(status)
                m.set_max_concurrency(4)
                m.connection_opened()
                m.worker_started()
                m.set_backplane_up(up)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        return pid

    def scrape():
        status, headers, body = gm.metrics_http_response()
        out = {}
        for fam in text_string_to_metric_families(body.decode()):
            for s in fam.samples:
                key = s.name + json.dumps(dict(sorted(s.labels.items())))
                out[key] = s.value
        return out

    p1 = worker(3, 1, True)
    p2 = worker(5, 2, False)
    first = scrape()
    gm.mark_worker_dead(p1)
    second = scrape()
    print(json.dumps({"first": first, "second": second, "env": os.environ[gm.MULTIPROC_ENV],
                      "files": sorted(os.listdir(path))}))
    """
)


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {k: v for k, v in os.environ.items() if k != gm.MULTIPROC_ENV}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _key(name: str, **labels: str) -> str:
    return name + json.dumps(dict(sorted(labels.items())))


@pytest.mark.timeout(60)
def test_multiprocess_scrape_sums_workers_and_drops_dead_live_gauges(tmp_path: Path) -> None:
    stale = tmp_path / "counter_999999.db"
    stale.write_bytes(b"stale from an earlier run")
    keep = tmp_path / "README"
    keep.write_text("not ours")
    out = json.loads(_run(_SUPERVISOR, str(tmp_path)))
    assert out["env"] == str(tmp_path)
    assert "counter_999999.db" not in out["files"] and "README" in out["files"]
    first, second = out["first"], out["second"]
    # counters and histograms are summed over both workers
    assert first[_key(S + "errors_total")] == 8
    assert first[_key(S + "message_received_size_bytes_count", kind="k.K")] == 8
    assert first[_key(S + "pubsub_publish_total", topic="t", message="k.K")] == 2
    # livesum gauges: both workers count
    assert first[_key(S + "connections_open")] == 2
    assert first[_key(S + "concurrent_workers")] == 2
    assert first[_key(S + "config_max_concurrency")] == 8
    # livemax status, livemin backplane
    assert first[_key(S + "status")] == 2
    assert first[_key(S + "backplane_up")] == 0
    # after the first worker is marked dead: totals stay, its live gauges go
    assert second[_key(S + "errors_total")] == 8
    assert second[_key(S + "connections_open")] == 1
    assert second[_key(S + "concurrent_workers")] == 1
    assert second[_key(S + "config_max_concurrency")] == 4
    assert second[_key(S + "status")] == 2
    # one snapshot file per worker: the first renamed dead (its totals stay), the second live
    assert len([f for f in out["files"] if f.startswith("dead_") and f.endswith(".gmm")]) == 1
    assert len([f for f in out["files"] if f.startswith("live_") and f.endswith(".gmm")]) == 1
    assert not [f for f in out["files"] if f.endswith(".db")]  # nothing of prometheus_client's


@pytest.mark.timeout(60)
def test_multiprocess_two_spawned_processes_share_one_dir(tmp_path: Path) -> None:
    """Workers started as fresh interpreters with the variable set (spawn, not fork)."""
    env = {gm.MULTIPROC_ENV: str(tmp_path)}
    pid_a = int(_run(_WORKER, "2", "1", "1", env=env))
    pid_b = int(_run(_WORKER, "4", "1", "1", env=env))
    scrape = textwrap.dedent(
        """
        import sys
        from goomerang_io.metrics import metrics_http_response, mark_worker_dead
        print(metrics_http_response()[2].decode())
        mark_worker_dead(int(sys.argv[1]))
        print("=====")
        print(metrics_http_response()[2].decode())
        """
    )
    text = _run(scrape, str(pid_a), env=env)
    before, after = text.split("=====")
    assert "goomerang_server_errors_total 6.0" in before
    assert "goomerang_server_backplane_up 1.0" in before
    assert "goomerang_server_connections_open 2.0" in before
    assert "goomerang_server_connections_open 1.0" in after
    assert "goomerang_server_errors_total 6.0" in after
    assert pid_a != pid_b


# ------------------------------------------------------------------ dashboard


def _render_module() -> Any:
    spec = importlib.util.spec_from_file_location("goomerang_dashboard_render", RENDER)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_dashboard_json_is_generated_from_the_panel_specs() -> None:
    render = _render_module()
    committed = json.loads((ROOT / "dashboard" / "goomerang.json").read_text())
    assert committed == json.loads(json.dumps(render.dashboard_json()))
    variables = {v["name"]: v["type"] for v in committed["templating"]["list"]}
    assert variables == {"datasource": "datasource", "instance": "query"}
    titles = [p["title"] for p in committed["panels"] if p["type"] != "row"]
    assert titles == [p.title for p in render.PANELS]


def test_dashboard_queries_only_name_exposed_metrics() -> None:
    render = _render_module()
    reg = CollectorRegistry()
    _exercise_server(ServerMetrics(registry=reg))
    _exercise_client(ClientMetrics(registry=reg))
    exposed = {s.name for fam in reg.collect() for s in fam.samples}
    used = set()
    for panel in render.PANELS:
        for t in panel.targets:
            sample = t.metric + "_bucket" if isinstance(t, render.Quantile) else t.metric
            assert sample in exposed, (panel.title, sample)
            used.add(t.metric.removesuffix("_count").removesuffix("_total"))
    # every family, Go's and ours, is on some panel
    families = {n.removesuffix("_total") for n in (*GO_SERVER, *GO_CLIENT, *OURS_SERVER)}
    assert families - used == set()


def test_bucket_quantile_matches_prometheus_interpolation() -> None:
    render = _render_module()
    inf = float("inf")
    # 10 observations: 4 in (0, 1], 4 in (1, 2], 2 in (2, 4]
    buckets = [(1.0, 4.0), (2.0, 8.0), (4.0, 10.0), (inf, 10.0)]
    assert render.bucket_quantile(0.5, buckets) == pytest.approx(1.25)
    assert render.bucket_quantile(0.9, buckets) == pytest.approx(3.0)
    assert render.bucket_quantile(0.2, buckets) == pytest.approx(0.5)
    # everything above the last finite bound: the bound, as Prometheus answers
    assert render.bucket_quantile(0.99, [(1.0, 0.0), (inf, 5.0)]) == 1.0
    assert str(render.bucket_quantile(0.5, [(1.0, 0.0), (inf, 0.0)])) == "nan"


def test_render_evaluates_rates_quantiles_and_gauges() -> None:
    render = _render_module()
    reg = CollectorRegistry()
    m = ServerMetrics(registry=reg)

    scrapes = []
    for i in range(3):
        for _ in range(10):
            m.message_received(K, 100, 0.02)
        m.set_status(i)
        scrapes.append(
            render.merge(
                [("h:1", render.parse_scrape(10.0 * i, generate_latest(reg).decode()))], 10.0 * i
            )
        )
    rate = render.evaluate(
        render.Rate(S + "message_received_size_bytes_count", ("kind",), "{{kind}}"), scrapes
    )
    assert rate == {"MessageV1": ([10.0, 20.0], [1.0, 1.0])}
    q = render.evaluate(
        render.Quantile(0.5, S + "message_received_size_bytes", legend="p50"), scrapes
    )
    assert q["p50"][1] == [120.0, 120.0]  # rank 5 of 10, all in (80, 160]
    g = render.evaluate(render.Gauge(S + "status", "max", "{{instance}}", ("instance",)), scrapes)
    assert g == {"h:1": ([0.0, 10.0, 20.0], [0.0, 1.0, 2.0])}
