"""Propagation helpers: W3C trace context (and correlation id) in HTTP headers and MQTT 5.

The logic lives in :mod:`energy_common.propagation` (OpenTelemetry API only), which the
HTTP client and the MQTT manager call; this module re-exports it and adds shortcuts.

Example:
    >>> from energy_monitoring.propagation import current_headers, continue_trace
    >>> headers = current_headers()  # {"traceparent": ...} inside a span
    >>> with continue_trace(headers):
    ...     pass  # spans started here are children of the remote span
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from energy_common.propagation import (
    extract_context,
    extract_correlation_id,
    from_user_properties,
    inject_context,
    to_user_properties,
)
from opentelemetry import context as otel_context

__all__ = [
    "continue_trace",
    "current_headers",
    "current_user_properties",
    "extract_context",
    "extract_correlation_id",
    "from_user_properties",
    "inject_context",
    "to_user_properties",
]


def current_headers() -> dict[str, str]:
    """Return HTTP headers carrying the current correlation id and trace context."""
    headers: dict[str, str] = {}
    inject_context(headers)
    return headers


def current_user_properties() -> list[tuple[str, str]]:
    """Return MQTT 5 user properties carrying the current correlation id and trace context."""
    return to_user_properties(current_headers())


@contextmanager
def continue_trace(carrier: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> Iterator[None]:
    """Make the trace context of incoming headers or MQTT 5 user properties current for a block.

    Args:
        carrier: A header mapping, or MQTT 5 user properties (pairs); None starts no trace.
    """
    if carrier is None:
        yield
        return
    mapping = carrier if isinstance(carrier, Mapping) else from_user_properties(carrier)
    token = otel_context.attach(extract_context(mapping))
    try:
        yield
    finally:
        otel_context.detach(token)
