"""The recorders' plain counts, the collector that exposes them, the multiprocess files and merge.

prometheus_client's own Histogram and Counter serve as the oracle: what a
recorder exposes must equal what they would have exposed for the same
observations (bucket counts and counts exactly, sums to rounding).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from goomerang_io import metrics as gm
from goomerang_io.metrics import DEFAULT_SIZE_BUCKETS, ServerMetrics, metrics_http_response
from goomerang_io.metrics.families import go_float
from goomerang_io.metrics.merge import DirectoryCollector, merge_files
from goomerang_io.metrics.snapfile import SnapshotFile, read_records

ROOT = Path(__file__).resolve().parents[2]
S = "goomerang_server_"
RECEIVED = S + "message_received_size_bytes"


def exposed(text: str) -> dict[str, float]:
    """Sample name + labels (JSON) -> value, ``_created`` left out."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if not s.name.endswith("_created"):
                out[s.name + json.dumps(dict(sorted(s.labels.items())))] = s.value
    return out


def assert_same(got: dict[str, float], want: dict[str, float]) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if "_sum" in key:  # the same numbers, added in another order
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
        else:  # bucket counts, counts, counters, gauges: exact
            assert got[key] == value, key


_values = st.one_of(
    st.sampled_from([*DEFAULT_SIZE_BUCKETS, 0, 1e9, float("inf")]),
    st.integers(0, 100_000),
    st.floats(0, 1e6, allow_nan=False),
)
_observations = st.lists(st.tuples(st.sampled_from(["k.A", "k.B"]), _values), max_size=60)
_buckets = st.lists(
    st.floats(1e-6, 1e12, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=8,
    unique=True,
).map(sorted)


@settings(max_examples=60, deadline=None)
@given(_observations, _buckets)
def test_histograms_equal_prometheus_client_observations(
    observations: list[tuple[str, float]], buckets: list[float]
) -> None:
    """Bucket counts, counts and sums as Histogram.observe gives them, ``le`` labels included."""
    reg, oracle = CollectorRegistry(), CollectorRegistry()
    m = ServerMetrics(registry=reg, size_buckets=buckets)
    h = Histogram(RECEIVED, "The size of the received messages in bytes", ["kind"],
                  registry=oracle, buckets=buckets)  # fmt: skip
    for kind, value in observations:
        m.message_received(kind, value, None)  # type: ignore[arg-type]
        h.labels(kind).observe(value)
    got = {k: v for k, v in exposed(generate_latest(reg).decode()).items() if RECEIVED in k}
    assert_same(got, exposed(generate_latest(oracle).decode()))


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_le_label_is_formatted_as_prometheus_client_does(bound: float) -> None:
    from prometheus_client.utils import floatToGoString  # the oracle, in a test only

    assert go_float(bound) == floatToGoString(bound)


def test_values_are_visible_at_once_inside_a_loop_and_from_another_thread() -> None:
    """No write-back step in one process: a collection reads the counts themselves."""
    reg = CollectorRegistry()
    m = ServerMetrics(registry=reg)
    name = S + "message_processing_duration_seconds_count"

    async def main() -> None:
        m.message_processed("k.K", 0.001)
        assert reg.get_sample_value(name, {"kind": "k.K"}) == 1  # same iteration
        m.message_processed("k.K", 0.002)
        m.worker_started()
        # a scrape thread (prometheus_client.start_http_server) while the loop runs
        value = await asyncio.to_thread(reg.get_sample_value, name, {"kind": "k.K"})
        assert value == 2
        assert reg.get_sample_value(S + "concurrent_workers") == 1

    asyncio.run(main())


def test_a_collected_recorder_leaves_its_counts() -> None:
    """Counters never go back: a recorder that is garbage collected keeps counting in the sum."""
    reg = CollectorRegistry()
    keep = ServerMetrics(registry=reg)
    gone = ServerMetrics(registry=reg)
    keep.error()
    gone.error()
    gone.message_received("k.K", 5, 0.001)
    del gone
    gc.collect()
    assert reg.get_sample_value(S + "errors_total") == 2
    assert reg.get_sample_value(RECEIVED + "_count", {"kind": "k.K"}) == 1
    keep.message_received("k.K", 5, None)
    assert reg.get_sample_value(RECEIVED + "_count", {"kind": "k.K"}) == 2


def test_recorders_never_touch_prometheus_client_private_names() -> None:
    """The metrics package uses prometheus_client's public API only (what an upgrade keeps)."""
    import ast
    import re

    public_modules = {"prometheus_client", "prometheus_client.core", "prometheus_client.registry"}
    documented = {  # prometheus_client's README: exposition, custom collectors, multiprocess
        "REGISTRY", "CollectorRegistry", "CONTENT_TYPE_LATEST", "exposition", "generate_latest",
        "multiprocess", "Collector", "Metric", "CounterMetricFamily", "GaugeMetricFamily",
        "HistogramMetricFamily",
    }  # fmt: skip
    for path in (ROOT / "goomerang_io" / "metrics").glob("*.py"):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus"):
                assert node.module in public_modules, (path.name, node.module)
                assert {a.name for a in node.names} <= documented, (path.name, node.names)
        private = r"\._buckets\b|\._sum\b|ValueClass|_names_to_collectors|\._upper_bounds"
        assert not re.search(private, source), path.name


# ------------------------------------------------------------------ snapshot files


_keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_series = st.dictionaries(
    _keys, st.lists(st.floats(allow_nan=False), min_size=0, max_size=16), max_size=40
)


@settings(max_examples=80, deadline=None)
@given(_series, st.data())
def test_snapshot_file_round_trip(series: dict[str, list[float]], data: st.DataObject) -> None:
    """What is added and overwritten reads back exactly, past the initial size too."""
    with tempfile.TemporaryDirectory() as tmp:
        f = SnapshotFile(os.path.join(tmp, "live_1_x.gmm"))
        want: dict[str, list[float]] = {}
        for key, vals in series.items():
            f.add(json.dumps([key]), vals)
            want[json.dumps([key])] = vals
        big = "b" * 70_000  # one record larger than the file's first size: it grows
        f.add(json.dumps([big]), [1.0])
        want[json.dumps([big])] = [1.0]
        for key, vals in list(want.items()):
            if vals and data.draw(st.booleans()):
                new = data.draw(st.lists(st.floats(allow_nan=False), min_size=len(vals),
                                         max_size=len(vals)))  # fmt: skip
                f.put(key, new)
                want[key] = new
        f.close()
        got = {json.dumps(k): list(v) for k, v in read_records(os.path.join(tmp, "live_1_x.gmm"))}
        assert got == want


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 400))
def test_reading_a_foreign_or_cut_file_never_raises(junk: bytes, cut: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "live_1_x.gmm")
        f = SnapshotFile(path)
        f.add(json.dumps(["a", ["x"]]), [1.0, 2.0])
        f.add(json.dumps(["b", []]), [3.0])
        f.close()
        whole = Path(path).read_bytes()
        Path(path).write_bytes(whole[:cut])
        records = list(read_records(path))
        assert records in ([], [(["a", ["x"]], (1.0, 2.0))], [(["a", ["x"]], (1.0, 2.0)),
                                                               (["b", []], (3.0,))])  # fmt: skip
        Path(path).write_bytes(struct.pack("<Q", len(junk) + 8) + junk)
        list(read_records(path))  # whatever it holds: no exception
        assert merge_files(tmp) is not None


# ------------------------------------------------------------------ multiprocess merge


@contextmanager
def multiprocess_dir() -> Iterator[str]:
    old = os.environ.get(gm.MULTIPROC_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[gm.MULTIPROC_ENV] = tmp
        try:
            yield tmp
        finally:
            if old is None:
                del os.environ[gm.MULTIPROC_ENV]
            else:
                os.environ[gm.MULTIPROC_ENV] = old


_events = st.lists(
    st.tuples(
        st.sampled_from(["recv", "sent", "proc", "error", "pub", "open", "close", "drop"]),
        st.sampled_from(["k.A", "k.B"]),
        st.floats(0, 1e5, allow_nan=False),
    ),
    max_size=40,
)


def _apply(m: ServerMetrics, events: list[tuple[str, str, float]]) -> None:
    for what, kind, value in events:
        if what == "recv":
            m.message_received(kind, value, value / 1e4)  # type: ignore[arg-type]
        elif what == "sent":
            m.message_sent(kind, value, value / 1e6)  # type: ignore[arg-type]
        elif what == "proc":
            m.message_processed(kind, value / 1e5)
        elif what == "error":
            m.error()
        elif what == "pub":
            m.published(kind, kind)
        elif what == "open":
            m.connection_opened()
        elif what == "close":
            m.connection_closed()
        else:
            m.backplane_dropped(int(value))


@settings(max_examples=40, deadline=None)
@given(st.lists(_events, min_size=1, max_size=4), st.data())
def test_merged_files_equal_one_process_recording_everything(
    workers: list[list[tuple[str, str, float]]], data: st.DataObject
) -> None:
    """N processes' files (written part-way and at the end) merge to the single-process sums."""
    oracle = CollectorRegistry()
    single = ServerMetrics(registry=oracle)
    for events in workers:
        _apply(single, events)
    want = exposed(generate_latest(oracle).decode())
    with multiprocess_dir() as tmp:
        recorders = [ServerMetrics(registry=CollectorRegistry()) for _ in workers]
        for m, events in zip(recorders, workers, strict=True):
            half = data.draw(st.integers(0, len(events)))
            _apply(m, events[:half])  # no loop: each event is written at once
            m.flush()
            _apply(m, events[half:])
        for m in recorders:
            m.flush()
        scrape = CollectorRegistry()
        scrape.register(DirectoryCollector(tmp))
        got = exposed(generate_latest(scrape).decode())
        # the scrape answer of this process: the same merge (every recorder alive here writes)
        assert exposed(metrics_http_response()[2].decode()).keys() >= got.keys()
        del recorders, m
    # a snapshot file holds per worker what the worker's own registry held
    for key in list(want):
        if key.startswith(S + "status") or key.startswith(S + "config_max"):
            continue
        assert (key in got) == (key in want), key
    assert_same({k: got[k] for k in want}, want)


_SUPERVISOR = textwrap.dedent(
    """
    import json, os, sys
    from goomerang_io import metrics as gm

    gm.prepare_multiprocess_dir(sys.argv[1])
    parent = gm.ServerMetrics()
    parent.error()  # the supervisor's own, before the fork: not the workers'
    parent.flush()
    hold_r, hold_w = os.pipe()  # the workers block on it until killed

    def worker(errors, status, conns):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                for _ in range(errors):
                    parent.error()  # the recorder inherited from the supervisor
                parent.set_status(status)
                for _ in range(conns):
                    parent.connection_opened()
                parent.message_received("k.K", 7, 0.5)
                os.write(w, b"x")
                os.read(hold_r, 1)
            finally:
                os._exit(0)
        os.close(w)
        os.read(r, 1)  # written, still running
        return pid

    def scrape():
        text = gm.metrics_http_response()[2].decode()
        keep = ("errors_total", "status ", "connections_open", "received_size_bytes_count")
        return sorted(line for line in text.splitlines() if any(k in line for k in keep)
                      and not line.startswith("#"))

    a = worker(3, 1, 2)
    b = worker(5, 2, 1)
    first = scrape()
    os.kill(a, 9)
    os.waitpid(a, 0)
    gm.mark_worker_dead(a)
    second = scrape()
    os.kill(b, 9)
    os.waitpid(b, 0)
    print(json.dumps({"first": first, "second": second}))
    """
)


@pytest.mark.timeout(60)
def test_forked_workers_scrape_exactly_and_dead_ones_keep_only_totals(tmp_path: Path) -> None:
    """Real forked processes, still running when scraped; one is killed and marked dead."""
    env = {k: v for k, v in os.environ.items() if k != gm.MULTIPROC_ENV}
    env["PYTHONPATH"] = str(ROOT)
    metrics_dir = tmp_path / "m"
    done = subprocess.run(
        [sys.executable, "-c", _SUPERVISOR, str(metrics_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    recv = S + 'message_received_size_bytes_count{kind="k.K"}'
    assert out["first"] == sorted(
        [
            f"{S}connections_open 3.0",  # livesum of the two live workers
            f"{S}errors_total 9.0",  # 1 (supervisor) + 3 + 5: each process its own
            f"{recv} 2.0",
            f"{S}status 2.0",  # livemax
        ]
    )
    assert out["second"] == sorted(
        [
            f"{S}connections_open 1.0",  # the dead worker's gauges are gone
            f"{S}errors_total 9.0",  # its totals stay
            f"{recv} 2.0",
            f"{S}status 2.0",
        ]
    )


def test_scrape_in_the_same_iteration_is_exact_in_multiprocess_mode(tmp_path: Path) -> None:
    """A scrape answered before the loop turns writes this process's values first."""
    code = textwrap.dedent(
        """
        import asyncio
        from goomerang_io.metrics import ServerMetrics, metrics_http_response

        async def main():
            m = ServerMetrics()
            m.message_received("k.Same", 5, None)
            print(metrics_http_response()[2].decode())

        asyncio.run(main())
        """
    )
    env = {k: v for k, v in os.environ.items() if k != gm.MULTIPROC_ENV}
    env.update(PYTHONPATH=str(ROOT), **{gm.MULTIPROC_ENV: str(tmp_path)})
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=30, check=True)  # fmt: skip
    assert f'{RECEIVED}_count{{kind="k.Same"}} 1.0' in done.stdout


# ------------------------------------------------------------------ the handler middleware


class _Msg:
    """What the middleware reads of a message."""

    def __init__(self, kind: str, size: int, creation_ns: int) -> None:
        self.kind, self.payload_size, self.creation_ns = kind, size, creation_ns


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["k.A", "k.B"]),
            st.integers(0, 100_000),
            st.sampled_from([0, 1, -(10**12), 10**9]),  # none, ~now, in the future, 1 s ago
            st.booleans(),  # the handler raises
        ),
        max_size=30,
    )
)
def test_middleware_records_what_the_methods_record(
    messages: list[tuple[str, int, int, bool]],
) -> None:
    """The inlined middleware equals message_received / worker_* / message_processed calls."""
    import time

    from goomerang_io.middlewares import metrics_middleware

    reg, oracle = CollectorRegistry(), CollectorRegistry()
    inline, methods = ServerMetrics(registry=reg), ServerMetrics(registry=oracle)
    now = time.time_ns()

    def handler(_sender: object, message: _Msg) -> None:
        assert reg.get_sample_value(S + "concurrent_workers") == 1  # running: counted
        if raises:
            raise ValueError("handler failed")

    chain = metrics_middleware(inline)(handler)  # type: ignore[arg-type]
    for kind, size, offset, raises in messages:
        created = 0 if offset == 0 else now - offset
        try:
            chain(None, _Msg(kind, size, created))
        except ValueError:
            assert raises
        # the same event through the methods; inflight is measured, so reuse what was seen
        methods.message_received(kind, size, None)
        methods.worker_started()
        methods.message_processed(kind, 0.0)
        methods.worker_finished()
    got, want = exposed(generate_latest(reg).decode()), exposed(generate_latest(oracle).decode())
    for key, value in want.items():
        if "inflight" in key or "processing_duration_seconds" in key:
            continue  # measured times: checked below by their counts
        assert got[key] == value, key
    timed = sum(1 for _k, _s, off, _r in messages if off)
    inflight = S + "message_received_inflight_duration_seconds_count"
    for kind in ("k.A", "k.B"):
        n = sum(1 for k, _s, _o, _r in messages if k == kind)
        n_timed = sum(1 for k, _s, off, _r in messages if k == kind and off)
        proc = reg.get_sample_value(S + "message_processing_duration_seconds_count", {"kind": kind})
        assert (proc or 0) == n
        assert (reg.get_sample_value(inflight, {"kind": kind}) or 0) == n_timed
    assert sum(reg.get_sample_value(inflight, {"kind": k}) or 0 for k in ("k.A", "k.B")) == timed
    assert reg.get_sample_value(S + "concurrent_workers") == 0


@pytest.mark.timeout(30)
def test_concurrent_workers_count_running_async_handlers_on_a_real_server() -> None:
    """Go's concurrent workers: handlers running now (a queued one is not running yet)."""
    from util import poll_until

    from goomerang_io import Client, Server
    from goomerang_io.loop import run
    from goomerang_proto import Message
    from goomerang_proto.pb.goomerang_example_pb2 import MessageV1

    reg = CollectorRegistry()
    workers = S + "concurrent_workers"

    async def main() -> None:
        release = asyncio.Event()
        started: asyncio.Queue[str] = asyncio.Queue()

        async def slow(_sender: object, message: object) -> None:
            started.put_nowait("x")
            await release.wait()

        server = Server("127.0.0.1:0", metrics=ServerMetrics(registry=reg), max_concurrency=2)
        server.handle(MessageV1, slow)
        async with server:
            client = Client(server.addr, heartbeat_interval=None)
            await client.connect()
            for i in range(3):
                await client.send(Message(MessageV1(message=str(i))))
            for _ in range(2):
                await asyncio.wait_for(started.get(), 5)
            assert reg.get_sample_value(workers) == 2  # the third waits for a slot
            release.set()
            await asyncio.wait_for(started.get(), 5)  # the third ran
            await poll_until(lambda: reg.get_sample_value(workers) == 0)  # all returned
            count = reg.get_sample_value(
                S + "message_processing_duration_seconds_count", {"kind": KIND}
            )
            assert count == 3
            await client.close()

    run(main())


KIND = "goomerang.example.MessageV1"
