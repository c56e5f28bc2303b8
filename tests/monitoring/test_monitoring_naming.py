"""Tests for the Prometheus naming rules (energy_monitoring._naming via energy_monitoring.metrics)."""

from __future__ import annotations

import pytest
from energy_monitoring.metrics import MetricNameError, duration_name, label_name, metric_name


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        ("api.requests", "counter", "api_requests_total"),
        ("api_requests_total", "counter", "api_requests_total"),
        ("API.Requests", "counter", "api_requests_total"),
        ("active_connections", "gauge", "active_connections"),
        ("cache hit-ratio", "gauge", "cache_hit_ratio"),
        ("job:latency..ms", "histogram", "job_latency_ms"),
        ("5xx.errors", "counter", "_5xx_errors_total"),
        ("__weird__", "gauge", "weird"),
    ],
)
def test_metric_names_follow_prometheus_conventions(raw: str, kind: str, expected: str) -> None:
    """Dots, dashes, spaces and colons map to underscores; counters end in _total exactly once."""
    assert metric_name(raw, kind) == expected  # type: ignore[arg-type]


def test_namespace_prefixes_once() -> None:
    """A namespace is put in front of the name, but not twice."""
    assert metric_name("api.requests", "counter", "billing") == "billing_api_requests_total"
    assert metric_name("billing.api.requests", "counter", "billing") == "billing_api_requests_total"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("database.query", "database_query_duration_seconds"),
        ("request.duration", "request_duration_seconds"),
        ("render_seconds", "render_seconds"),
    ],
)
def test_duration_names_end_in_seconds(raw: str, expected: str) -> None:
    """Durations are histograms in seconds with the _seconds unit suffix."""
    assert duration_name(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [("http-method", "http_method"), ("Endpoint", "endpoint")])
def test_label_names_are_mapped(raw: str, expected: str) -> None:
    """Tag keys become valid label names."""
    assert label_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "kind"),
    [("", "counter"), ("...", "counter"), ("__name", "counter"), ("le", "histogram"), ("quantile", "gauge")],
)
def test_unusable_labels_raise(raw: str, kind: str) -> None:
    """Empty, reserved (__*) and type-reserved (le, quantile) label names raise MetricNameError."""
    with pytest.raises(MetricNameError):
        label_name(raw, kind)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["", " ", "!!!", "x" * 300, 42])
def test_unusable_metric_names_raise(raw: object) -> None:
    """Names with no usable character, too long or not a string raise MetricNameError."""
    with pytest.raises(MetricNameError) as info:
        metric_name(raw, "counter")  # type: ignore[arg-type]
    assert info.value.error_code == "METRIC_NAME_INVALID"
