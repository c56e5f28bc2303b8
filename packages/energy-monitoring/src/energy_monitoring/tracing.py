"""OpenTelemetry tracing: setup, the seed's ``get_tracer``/``@trace``, span helpers.

Example:
    >>> from energy_monitoring.tracing import get_tracer, trace
    >>> tracer = get_tracer("my-service")
    >>> with tracer.start_span("database_query") as span:
    ...     span.set_tag("query", "SELECT * FROM users")
    >>> @trace("user_service.get_user")
    ... async def get_user(user_id: str) -> None:
    ...     pass
"""

from __future__ import annotations

from energy_monitoring._clients import ClientLibrary, instrument_clients, instrument_engine, uninstrument_clients
from energy_monitoring._errors import TracingError
from energy_monitoring._setup import (
    ExporterName,
    build_tracer_provider,
    setup_tracing,
    shutdown_tracing,
    tracing_lifespan,
)
from energy_monitoring._span import EnergySpan
from energy_monitoring._tracer import EnergyTracer, get_tracer, trace

__all__ = [
    "ClientLibrary",
    "EnergySpan",
    "EnergyTracer",
    "ExporterName",
    "TracingError",
    "build_tracer_provider",
    "current_span_ids",
    "get_tracer",
    "instrument_clients",
    "instrument_engine",
    "setup_tracing",
    "shutdown_tracing",
    "trace",
    "tracing_lifespan",
    "uninstrument_clients",
]


def current_span_ids() -> tuple[str, str] | None:
    """Return ``(trace_id, span_id)`` of the active span as lowercase hex, or None.

    Example:
        >>> current_span_ids() is None  # outside any span
        True
    """
    from opentelemetry import trace as otel_trace  # noqa: PLC0415 - keep the module namespace small

    ctx = otel_trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
