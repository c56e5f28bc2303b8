"""Tests for energy_common.propagation: correlation id and W3C trace context carriers."""

from __future__ import annotations

from energy_common.context import correlation_scope
from energy_common.propagation import (
    extract_context,
    extract_correlation_id,
    from_user_properties,
    inject_context,
    to_user_properties,
)
from opentelemetry import trace

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_inject_writes_current_correlation_id() -> None:
    """inject_context writes the current correlation id under x-request-id."""
    carrier: dict[str, str] = {}
    with correlation_scope("abc-1"):
        inject_context(carrier)
    assert carrier["x-request-id"] == "abc-1"


def test_inject_without_context_writes_nothing() -> None:
    """Outside a request and a span, nothing is written."""
    carrier: dict[str, str] = {}
    inject_context(carrier)
    assert carrier == {}


def test_extract_context_reads_traceparent_case_insensitively() -> None:
    """A Traceparent header (any case) becomes the remote parent span context."""
    ctx = extract_context({"TraceParent": TRACEPARENT})
    span_context = trace.get_current_span(ctx).get_span_context()
    assert span_context.is_remote
    assert format(span_context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"


def test_extract_context_ignores_garbage() -> None:
    """A malformed traceparent yields an invalid (new-trace) context, never an error."""
    ctx = extract_context({"traceparent": "00-zz-yy-01"})
    assert not trace.get_current_span(ctx).get_span_context().is_valid


def test_extract_correlation_id_prefers_request_id_and_refuses_unsafe() -> None:
    """X-Request-ID wins over X-Correlation-ID; unsafe values are ignored."""
    assert extract_correlation_id({"X-Request-ID": "a", "X-Correlation-ID": "b"}) == "a"
    assert extract_correlation_id({"X-Correlation-ID": "b"}) == "b"
    assert extract_correlation_id({"X-Request-ID": "bad\nvalue"}) is None


def test_user_properties_round_trip() -> None:
    """MQTT 5 user properties carry exactly the propagated keys and come back as a dict."""
    carrier = {"x-request-id": "c1", "traceparent": TRACEPARENT, "other": "x"}
    props = to_user_properties(carrier)
    assert ("other", "x") not in props
    assert from_user_properties([*props, ("X-Request-ID", "second")]) == {
        "x-request-id": "c1",
        "traceparent": TRACEPARENT,
    }
    assert from_user_properties(None) == {}
