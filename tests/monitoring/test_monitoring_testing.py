"""Tests for energy_monitoring.testing: spans are recorded only inside capture_spans blocks."""

from __future__ import annotations

from energy_monitoring.metrics import MetricsRegistry, get_registry, increment_counter
from energy_monitoring.propagation import current_headers
from energy_monitoring.testing import capture_spans, span_exporter, use_registry
from energy_monitoring.tracing import current_span_ids, get_tracer


def test_spans_outside_capture_are_no_ops() -> None:
    """Outside capture_spans the test provider acts as no SDK: no ids, no traceparent, nothing exported."""
    exporter = span_exporter()
    with get_tracer("svc").start_span("outside"):
        assert current_span_ids() is None
        assert "traceparent" not in current_headers()
    with capture_spans() as spans:
        with get_tracer("svc").start_span("inside"):
            assert current_span_ids() is not None
        assert [s.name for s in spans.get_finished_spans()] == ["inside"]
    assert exporter.get_finished_spans() == ()


def test_use_registry_restores_the_default() -> None:
    """use_registry swaps the default registry for the block only."""
    before = get_registry()
    mine = MetricsRegistry()
    with use_registry(mine) as current:
        assert current is mine
        increment_counter("swapped")
    assert get_registry() is before
    assert mine.collector_registry.get_sample_value("swapped_total") == 1
