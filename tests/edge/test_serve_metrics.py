"""The Prometheus text edge serve exposes: types, labels, escaping, summaries."""

from __future__ import annotations

from edge.service.metrics import Metrics


def test_counters_summaries_and_gauges_in_exposition_format():
    m = Metrics(window=100)
    m.describe("requests_total", "counter", "requests by route")
    m.describe("latency_seconds", "summary", "request latency")
    m.describe("idle_total", "counter", "never incremented")
    m.inc("requests_total", {"route": "/v1/identify", "status": "200"})
    m.inc("requests_total", {"route": "/v1/identify", "status": "200"}, by=2)
    m.inc("requests_total", {"route": 'a"b\\c\nd', "status": "404"})
    for ms in range(1, 101):
        m.observe("latency_seconds", ms / 1000, {"route": "/v1/identify"})
    text = m.render([("people", None, 3), ("camera_up", {"camera": "door"}, 1.0)])
    lines = text.splitlines()
    assert text.endswith("\n")
    assert "# TYPE requests_total counter" in lines
    assert 'requests_total{route="/v1/identify",status="200"} 3' in lines
    assert 'requests_total{route="a\\"b\\\\c\\nd",status="404"} 1' in lines
    assert "# TYPE idle_total counter" in lines  # declared series are listed at zero samples
    assert "# TYPE latency_seconds summary" in lines
    median = next(
        x for x in lines if x.startswith('latency_seconds{route="/v1/identify",quantile="0.5"}')
    )
    assert abs(float(median.split()[-1]) - 0.0505) < 1e-9
    assert 'latency_seconds_count{route="/v1/identify"} 100' in lines
    assert (
        abs(float(next(x for x in lines if x.startswith("latency_seconds_sum")).split()[-1]) - 5.05)
        < 1e-9
    )
    assert "people 3" in lines and 'camera_up{camera="door"} 1' in lines


def test_a_summary_window_keeps_only_recent_samples_but_counts_all():
    m = Metrics(window=10)
    for v in [100.0] * 50 + [1.0] * 10:
        m.observe("x", v)
    lines = m.render().splitlines()
    assert 'x{quantile="0.99"} 1' in lines  # the old 100 s samples left the window
    assert "x_count 60" in lines and "x_sum 5010" in lines
