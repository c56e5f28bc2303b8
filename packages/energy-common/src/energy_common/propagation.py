"""Carry the request context across process boundaries: HTTP headers, MQTT, events.

One context travels with every request and message: the correlation id
(:mod:`energy_common.context`) and the W3C trace context (``traceparent`` /
``tracestate``) of the active OpenTelemetry span. These helpers write both into a
carrier and read them back. They use only the OpenTelemetry *API* (a core dependency,
a no-op until an SDK is installed), so the HTTP client, the MQTT manager and the event
bus propagate traces without importing ``energy_monitoring``.

Carriers:
    * HTTP headers: ``X-Request-ID`` plus ``traceparent``/``tracestate``.
    * MQTT 5 user properties: a list of ``(name, value)`` pairs with the same names in
      lower case (``x-request-id``, ``traceparent``, ``tracestate``).
    * Event envelopes and MQTT 3.1.1 JSON payloads: a plain ``dict``.

Example:
    >>> from energy_common.context import correlation_scope
    >>> from energy_common.propagation import inject_context, extract_correlation_id
    >>> headers: dict[str, str] = {}
    >>> with correlation_scope("req-1"):
    ...     inject_context(headers)
    >>> headers["x-request-id"]
    'req-1'
    >>> extract_correlation_id(headers)
    'req-1'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping

from opentelemetry import context as otel_context
from opentelemetry import propagate

from energy_common.context import get_correlation_id, is_valid_correlation_id

__all__ = [
    "CORRELATION_HEADER",
    "CORRELATION_HEADERS",
    "PROPAGATED_KEYS",
    "extract_context",
    "extract_correlation_id",
    "from_user_properties",
    "inject_context",
    "to_user_properties",
]

#: Header (and MQTT user property) that carries the correlation id.
CORRELATION_HEADER = "x-request-id"
#: Names accepted for the correlation id on the way in, in order of preference.
CORRELATION_HEADERS = ("x-request-id", "x-correlation-id")
#: Keys this module writes into a carrier.
PROPAGATED_KEYS = frozenset({CORRELATION_HEADER, "traceparent", "tracestate", "baggage"})


def inject_context(carrier: MutableMapping[str, str], *, correlation_id: str | None = None) -> None:
    """Write the correlation id and the active trace context into ``carrier``.

    Args:
        carrier: A mutable mapping of str to str (HTTP headers, an envelope dict).
        correlation_id: The id to send; defaults to the current one, if any.
    """
    cid = correlation_id if correlation_id is not None else get_correlation_id()
    if cid is not None:
        carrier[CORRELATION_HEADER] = cid
    # The global propagator is W3C trace context + baggage unless the app changed it.
    propagate.inject(carrier)


def extract_context(carrier: Mapping[str, str]) -> otel_context.Context:
    """Return the OpenTelemetry context (remote parent span) carried by ``carrier``.

    Keys are matched case-insensitively. A missing or malformed ``traceparent`` yields
    an empty context, so a new trace starts.
    """
    lowered = {str(key).lower(): str(value) for key, value in carrier.items()}
    return propagate.extract(lowered)


def extract_correlation_id(carrier: Mapping[str, str]) -> str | None:
    """Return the correlation id carried by ``carrier`` if present and safe, else None."""
    lowered = {str(key).lower(): value for key, value in carrier.items()}
    for name in CORRELATION_HEADERS:
        value = lowered.get(name)
        if value is not None and is_valid_correlation_id(value):
            return value
    return None


def to_user_properties(carrier: Mapping[str, str]) -> list[tuple[str, str]]:
    """Convert a carrier dict into MQTT 5 user properties (a list of pairs)."""
    return [(key, value) for key, value in carrier.items() if key in PROPAGATED_KEYS]


def from_user_properties(properties: Iterable[tuple[str, str]] | None) -> dict[str, str]:
    """Convert MQTT 5 user properties into a carrier dict (first value of a name wins)."""
    carrier: dict[str, str] = {}
    for key, value in properties or ():
        name = str(key).lower()
        if name in PROPAGATED_KEYS or name in CORRELATION_HEADERS:
            carrier.setdefault(name, str(value))
    return carrier
