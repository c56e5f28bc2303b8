"""The event envelope: building, encoding and validating CloudEvents JSON (pure functions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from energy_common.context import correlation_scope
from energy_messaging.events import (
    Event,
    InvalidEventError,
    build_event,
    decode_event,
    encode_event,
    validate_event_type,
)
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from pydantic import BaseModel

VALID = {
    "specversion": "1.0",
    "id": "evt-1",
    "type": "device.registered",
    "source": "urn:test",
    "time": "2026-01-01T12:00:00.000000Z",
    "datacontenttype": "application/json",
    "data": {"device_id": "s1"},
}


class Reading(BaseModel):
    """A pydantic payload."""

    meter: str
    at: datetime


def test_round_trip_keeps_every_attribute() -> None:
    """encode_event then decode_event gives back an equal event."""
    event = build_event(
        "reading.stored",
        {"kw": 1.5, "tags": ["a"], "ok": True, "none": None},
        source="urn:svc",
        correlation_id="req-9",
    )
    assert decode_event(encode_event(event)) == event


def test_build_takes_ambient_correlation_and_trace() -> None:
    """build_event fills correlationid and traceparent from the current context."""
    span = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1)))
    with correlation_scope("req-7"):
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            event = build_event("t.x", 1, source="urn:s")
        finally:
            otel_context.detach(token)
    assert event.correlationid == "req-7"
    assert event.traceparent == f"00-{0xABC:032x}-{0xDEF:016x}-01"


def test_pydantic_model_is_dumped_in_json_mode() -> None:
    """A pydantic model becomes its JSON-mode dump (datetimes as strings)."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    event = build_event("reading.stored", Reading(meter="m1", at=at), source="urn:s")
    assert event.data == {"meter": "m1", "at": "2026-01-01T00:00:00Z"}


def test_time_is_written_in_utc_rfc3339() -> None:
    """A time in another zone is written as UTC with a Z suffix."""
    when = datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    event = build_event("t.x", None, source="urn:s", time=when, event_id="e1")
    assert event.to_dict()["time"] == "2026-01-01T12:00:00.000000Z"
    assert "correlationid" not in event.to_dict()


def test_carrier_holds_propagation_keys() -> None:
    """Event.carrier() maps the extensions back to propagation header names."""
    event = Event("1", "t.x", "s", datetime.now(UTC), None, correlationid="c1", traceparent="tp", tracestate="ts")
    assert event.carrier() == {"x-request-id": "c1", "traceparent": "tp", "tracestate": "ts"}


@pytest.mark.parametrize("event_type", ["a", "device.registered", "com.energy.reading-stored_v2", "A1"])
def test_valid_event_types(event_type: str) -> None:
    """Reverse-DNS style names are accepted."""
    assert validate_event_type(event_type) == event_type


@pytest.mark.parametrize("event_type", ["", ".x", "a b", "a/b", "a+b", "a#", "a:b", "x" * 201, None, 3])
def test_invalid_event_types(event_type: Any) -> None:
    """Separators, wildcards, spaces, empty and over-long names are refused."""
    with pytest.raises(InvalidEventError):
        validate_event_type(event_type)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"event_id": ""}, "attribute 'id'", id="empty-id"),
        pytest.param({"event_id": "a\nb"}, "attribute 'id'", id="newline-id"),
        pytest.param({"source": ""}, "attribute 'source'", id="empty-source"),
        pytest.param({"time": datetime(2026, 1, 1)}, "timezone-aware", id="naive-time"),  # noqa: DTZ001
    ],
)
def test_build_rejects_bad_attributes(kwargs: dict[str, Any], message: str) -> None:
    """build_event refuses empty or unprintable ids and sources and naive times."""
    options: dict[str, Any] = {"source": "urn:s", **kwargs}
    with pytest.raises(InvalidEventError, match=message):
        build_event("t.x", 1, **options)


def test_encode_rejects_oversized_event() -> None:
    """An event above max_bytes is refused with size and limit in the details."""
    event = build_event("t.x", "x" * 2000, source="urn:s")
    with pytest.raises(InvalidEventError) as info:
        encode_event(event, max_bytes=1024)
    assert info.value.details["limit"] == 1024
    assert info.value.details["size"] > 1024


def test_decode_accepts_minimal_event_without_data() -> None:
    """datacontenttype and data are optional on the way in."""
    body = {k: v for k, v in VALID.items() if k not in {"datacontenttype", "data"}}
    event = decode_event(json.dumps(body))
    assert event.data is None
    assert event.time == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_decode_drops_unsafe_correlation_id() -> None:
    """A correlation id with unsafe characters is dropped rather than adopted."""
    event = decode_event(json.dumps({**VALID, "correlationid": "bad id\r\n"}))
    assert event.correlationid is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"specversion": "1.1"}, "unsupported specversion", id="specversion"),
        pytest.param({"datacontenttype": "text/plain"}, "unsupported datacontenttype", id="content-type"),
        pytest.param({"id": 5}, "attribute 'id'", id="id-not-string"),
        pytest.param({"type": "a b"}, "invalid event type", id="type"),
        pytest.param({"source": None}, "attribute 'source'", id="source"),
        pytest.param({"time": "2026-01-01T12:00:00"}, "RFC 3339", id="naive-time"),
        pytest.param({"time": 12}, "RFC 3339", id="time-not-string"),
        pytest.param({"traceparent": 5}, "attribute 'traceparent'", id="traceparent"),
        pytest.param({"tracestate": "x" * 600}, "attribute 'tracestate'", id="tracestate-too-long"),
    ],
)
def test_decode_rejects_bad_attributes(change: dict[str, Any], message: str) -> None:
    """Each malformed attribute is refused with a reason naming it."""
    with pytest.raises(InvalidEventError, match=message):
        decode_event(json.dumps({**VALID, **change}))


def test_decode_rejects_oversized_input() -> None:
    """Input above max_bytes is refused before parsing."""
    with pytest.raises(InvalidEventError, match="exceeds the limit"):
        decode_event(json.dumps(VALID).encode() + b" " * 2000, max_bytes=1024)
