"""The event envelope: CloudEvents 1.0 attributes in JSON structured mode.

An event travels as one JSON object with the CloudEvents attribute names, plus two
extensions that carry the request context::

    {
        "specversion": "1.0",
        "id": "9f0c...",
        "type": "device.registered",
        "source": "urn:energy:device-service",
        "time": "2026-01-01T12:00:00.000000Z",
        "datacontenttype": "application/json",
        "data": {"device_id": "sensor001"},
        "correlationid": "req-42",
        "traceparent": "00-0af7...-b7ad...-01",
    }

Building and parsing are pure functions without IO; parsing validates every attribute
and raises :class:`InvalidEventError` with the reason.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from energy_common.context import is_valid_correlation_id
from energy_common.propagation import CORRELATION_HEADER, inject_context

from energy_messaging.events._errors import InvalidEventError

__all__ = [
    "CONTENT_TYPE",
    "MAX_EVENT_BYTES",
    "SPECVERSION",
    "Event",
    "build_event",
    "decode_event",
    "encode_event",
    "validate_event_type",
]

#: CloudEvents specification version written and accepted.
SPECVERSION = "1.0"
#: The only content type: events are JSON.
CONTENT_TYPE = "application/json"
#: Default limit on an encoded event, in bytes.
MAX_EVENT_BYTES = 1_048_576

# Reverse-DNS style names ("device.registered", "com.energy.reading-stored"): safe inside
# a Redis key and a log line, no wildcards, no separators of other systems.
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,199}$")
_MAX_ID = 256
_MAX_SOURCE = 1024
_MAX_TRACE_HEADER = 512


@dataclass(frozen=True, slots=True)
class Event:
    """One event as a handler receives it (CloudEvents attribute names).

    Attributes:
        id: Unique id of the event (a redelivered event keeps it: key idempotency on it).
        type: Event type, e.g. ``"device.registered"``.
        source: URI-reference of the producer, e.g. ``"urn:energy:device-service"``.
        time: When the event was published (timezone-aware, UTC).
        data: The JSON payload.
        specversion: Always ``"1.0"``.
        datacontenttype: Always ``"application/json"``.
        correlationid: Correlation id of the request that published it (extension).
        traceparent: W3C trace context of the publishing span (extension).
        tracestate: W3C trace state, if any (extension).
    """

    id: str
    type: str
    source: str
    time: datetime
    data: Any
    specversion: str = SPECVERSION
    datacontenttype: str = CONTENT_TYPE
    correlationid: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the structured-mode JSON object (extensions only when set)."""
        body: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "time": self.time.astimezone(UTC).isoformat(timespec="microseconds").removesuffix("+00:00") + "Z",
            "datacontenttype": self.datacontenttype,
            "data": self.data,
        }
        for name in ("correlationid", "traceparent", "tracestate"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return body

    def carrier(self) -> dict[str, str]:
        """Return the propagation carrier (correlation id and trace context) of this event."""
        carrier: dict[str, str] = {}
        if self.correlationid is not None:
            carrier[CORRELATION_HEADER] = self.correlationid
        if self.traceparent is not None:
            carrier["traceparent"] = self.traceparent
        if self.tracestate is not None:
            carrier["tracestate"] = self.tracestate
        return carrier


def validate_event_type(event_type: object) -> str:
    """Return ``event_type`` if it is a valid event type, else raise.

    Raises:
        InvalidEventError: Not 1-200 characters of ``[A-Za-z0-9._-]`` starting with a
            letter or digit.
    """
    if not isinstance(event_type, str) or _EVENT_TYPE.fullmatch(event_type) is None:
        raise InvalidEventError(
            "Event types are 1-200 characters of letters, digits, '.', '_' or '-', starting with a letter or "
            "digit (e.g. 'device.registered').",
            {"event_type": str(event_type)[:200]},
        )
    return event_type


def build_event(
    event_type: str,
    data: Any,
    *,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
    correlation_id: str | None = None,
) -> Event:
    """Build an event, taking the correlation id and trace context from the current context.

    Args:
        event_type: The event type (see :func:`validate_event_type`).
        data: JSON-ready data or a pydantic model (dumped in JSON mode).
        source: URI-reference of the producer.
        event_id: Explicit id; 32 random hex characters by default.
        time: Explicit time; now (UTC) by default.
        correlation_id: Explicit correlation id; the current one by default.

    Raises:
        InvalidEventError: Bad event type, id or source.

    Example:
        >>> event = build_event("device.registered", {"device_id": "s1"}, source="urn:test")
        >>> event.type, event.data
        ('device.registered', {'device_id': 's1'})
    """
    validate_event_type(event_type)
    # Duck-typed pydantic check: importing pydantic here would make the events package heavy.
    if hasattr(type(data), "model_dump") and hasattr(type(data), "model_fields"):
        data = data.model_dump(mode="json")
    carrier: dict[str, str] = {}
    inject_context(carrier, correlation_id=correlation_id)
    cid = carrier.get(CORRELATION_HEADER)
    event = Event(
        id=event_id if event_id is not None else secrets.token_hex(16),
        type=event_type,
        source=source,
        time=time if time is not None else datetime.now(UTC),
        data=data,
        correlationid=cid if is_valid_correlation_id(cid) else None,
        traceparent=carrier.get("traceparent"),
        tracestate=carrier.get("tracestate"),
    )
    _check_text("id", event.id, _MAX_ID)
    _check_text("source", event.source, _MAX_SOURCE)
    if event.time.tzinfo is None:
        raise InvalidEventError("Event time must be timezone-aware; pass datetime.now(UTC).", {"field": "time"})
    return event


def encode_event(event: Event, *, max_bytes: int = MAX_EVENT_BYTES) -> bytes:
    """Serialise an event to compact JSON bytes.

    Raises:
        InvalidEventError: The data is not JSON-serialisable (or holds NaN/Infinity), or
            the encoded event exceeds ``max_bytes``.
    """
    try:
        raw = _ENCODER.encode(event.to_dict()).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(
            f"Event data must be JSON (dicts, lists, strings, numbers, booleans, null): {exc}",
            {"event_type": event.type},
        ) from exc
    if len(raw) > max_bytes:
        raise InvalidEventError(
            f"The encoded event is {len(raw)} bytes, above the limit of {max_bytes}; send a reference instead.",
            {"event_type": event.type, "size": len(raw), "limit": max_bytes},
        )
    return raw


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode_event(raw: bytes | str, *, max_bytes: int = MAX_EVENT_BYTES) -> Event:
    """Parse and validate a received event.

    An unsafe correlation id is dropped (a new one is started for the handler) rather
    than rejected; every other bad attribute rejects the event.

    Raises:
        InvalidEventError: With the reason (size, JSON, missing or malformed attribute).
    """
    if len(raw) > max_bytes:
        raise InvalidEventError(f"event of {len(raw)} bytes exceeds the limit of {max_bytes}")
    try:
        body = _DECODER.decode(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEventError(f"event is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidEventError("event is not a JSON object")
    if body.get("specversion") != SPECVERSION:
        raise InvalidEventError(f"unsupported specversion {body.get('specversion')!r}; expected '1.0'")
    if body.get("datacontenttype", CONTENT_TYPE) != CONTENT_TYPE:
        raise InvalidEventError(f"unsupported datacontenttype {body.get('datacontenttype')!r}; expected JSON")
    event_id = _check_text("id", body.get("id"), _MAX_ID)
    event_type = body.get("type")
    if not isinstance(event_type, str) or _EVENT_TYPE.fullmatch(event_type) is None:
        raise InvalidEventError(f"invalid event type {str(event_type)[:200]!r}")
    source = _check_text("source", body.get("source"), _MAX_SOURCE)
    time_text = body.get("time")
    try:
        time = datetime.fromisoformat(time_text) if isinstance(time_text, str) else None
    except ValueError:
        time = None
    if time is None or time.tzinfo is None:
        raise InvalidEventError(f"invalid or missing RFC 3339 time {str(time_text)[:64]!r}")
    cid = body.get("correlationid")
    return Event(
        id=event_id,
        type=event_type,
        source=source,
        time=time,
        data=body.get("data"),
        correlationid=cid if is_valid_correlation_id(cid) else None,
        traceparent=_optional_text("traceparent", body.get("traceparent")),
        tracestate=_optional_text("tracestate", body.get("tracestate")),
    )


def _check_text(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise InvalidEventError(f"attribute '{name}' must be a printable string of 1-{limit} characters")
    return value


def _optional_text(name: str, value: object) -> str | None:
    if value is None:
        return None
    return _check_text(name, value, _MAX_TRACE_HEADER)
