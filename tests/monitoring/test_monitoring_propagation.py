"""Tests for energy_monitoring.propagation: trace context in HTTP headers and MQTT 5 user properties."""

from __future__ import annotations

import energy_common.propagation as common
from energy_common.context import correlation_scope
from energy_monitoring import propagation
from energy_monitoring.testing import InMemorySpanExporter
from energy_monitoring.tracing import get_tracer


def test_helpers_are_energy_common_functions() -> None:
    """The propagation helpers are energy_common's own (one implementation)."""
    for name in ("inject_context", "extract_context", "to_user_properties", "from_user_properties"):
        assert getattr(propagation, name) is getattr(common, name)


def test_headers_carry_the_active_span_and_correlation_id(spans: InMemorySpanExporter) -> None:
    """Inside a span, current_headers holds its traceparent and the correlation id."""
    with correlation_scope("req-7"), get_tracer("svc").start_span("outgoing") as span:
        headers = propagation.current_headers()
        props = propagation.current_user_properties()
    ctx = span.get_span_context()
    assert headers["traceparent"].startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
    assert headers["x-request-id"] == "req-7"
    assert dict(props) == headers


def test_outside_a_span_nothing_is_injected() -> None:
    """Without an active span or correlation id the headers stay empty."""
    assert propagation.current_headers() == {}


def test_continue_trace_from_mqtt_properties_and_headers(spans: InMemorySpanExporter) -> None:
    """A span started under continue_trace joins the sender's trace (MQTT 5 properties or headers)."""
    tracer = get_tracer("svc")
    with tracer.start_span("publish") as sender:
        props = propagation.current_user_properties()
        headers = propagation.current_headers()
    for carrier in (props, headers):
        with propagation.continue_trace(carrier), tracer.start_span("handle") as handler:
            pass
        assert handler.get_span_context().trace_id == sender.get_span_context().trace_id
    with propagation.continue_trace(None), tracer.start_span("fresh") as fresh:
        pass
    assert fresh.get_span_context().trace_id != sender.get_span_context().trace_id
    handled = [s for s in spans.get_finished_spans() if s.name == "handle"]
    assert all(s.parent is not None and s.parent.span_id == sender.get_span_context().span_id for s in handled)
