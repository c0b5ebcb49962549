"""Queue-group and backplane-drop metrics: created on first use, label set bounded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from goomerang_io.metrics import ServerMetrics


def _text(reg: CollectorRegistry) -> str:
    return generate_latest(reg).decode()


def test_no_series_until_used_then_counted() -> None:
    reg = CollectorRegistry()
    m = ServerMetrics(registry=reg)
    m.flush()
    assert "group_deliveries" not in _text(reg)
    assert "backplane_dropped" not in _text(reg)
    m.group_delivered("g")
    m.group_delivered("g")
    m.group_dropped("g")
    m.backplane_dropped(3)
    text = _text(reg)
    assert 'goomerang_server_group_deliveries_total{group="g"} 2.0' in text
    assert 'goomerang_server_group_drops_total{group="g"} 1.0' in text
    assert "goomerang_server_backplane_dropped_total 3.0" in text


def test_group_label_set_is_bounded() -> None:
    reg = CollectorRegistry()
    m = ServerMetrics(registry=reg)
    m.max_group_labels = 2
    for name in ("a", "b", "c", "d", "a"):
        m.group_delivered(name)
    text = _text(reg)
    assert 'group="a"} 2.0' in text and 'group="b"} 1.0' in text
    assert 'group="_other"} 2.0' in text
    assert 'group="c"' not in text and 'group="d"' not in text
