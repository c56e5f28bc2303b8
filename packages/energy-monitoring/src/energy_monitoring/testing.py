"""Test helpers shipped as API: capture spans in memory, swap the metrics registry.

OpenTelemetry allows one global tracer provider per process, so tests cannot install a
fresh provider per test. :func:`span_exporter` installs (once) an SDK provider that
exports to an in-memory exporter; its tracers record only inside :func:`capture_spans`
blocks and behave exactly like "no SDK installed" (no-op spans that pass a parent
through, no trace context injected) everywhere else, so the rest of a test session is
not affected. If an SDK provider is already installed, the exporter is added to it
instead (that provider then records all the time, as its installer decided).

Example:
    >>> from energy_monitoring.testing import capture_spans
    >>> from energy_monitoring.tracing import trace
    >>> @trace("work")
    ... def work() -> int:
    ...     return 1
    >>> with capture_spans() as spans:
    ...     _ = work()
    ...     names = [span.name for span in spans.get_finished_spans()]
    >>> names
    ['work']
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from energy_monitoring._api import use_registry
from energy_monitoring._errors import TracingError

__all__ = ["InMemorySpanExporter", "capture_spans", "span_exporter", "use_registry"]

_exporter: InMemorySpanExporter | None = None
_lock = threading.Lock()
_active = 0  # open capture_spans() blocks
_NOOP = otel_trace.NoOpTracer()


class _GatedTracer(otel_trace.Tracer):
    """The SDK tracer inside :func:`capture_spans`, OpenTelemetry's no-op tracer outside."""

    def __init__(self, tracer: otel_trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(self, *args: Any, **kwargs: Any) -> otel_trace.Span:
        return (self._tracer if _active else _NOOP).start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return (self._tracer if _active else _NOOP).start_as_current_span(*args, **kwargs)


class _GatedTracerProvider(TracerProvider):
    """An SDK provider whose tracers record only while spans are being captured."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> otel_trace.Tracer:
        return _GatedTracer(super().get_tracer(*args, **kwargs))


def span_exporter() -> InMemorySpanExporter:
    """Return the process-wide in-memory span exporter, installing it on first call.

    Raises:
        TracingError: a non-SDK tracer provider is installed (spans cannot be captured).
    """
    global _exporter  # noqa: PLW0603 - one exporter per process, like the global provider
    with _lock:
        if _exporter is not None:
            return _exporter
        current = otel_trace.get_tracer_provider()
        if isinstance(current, otel_trace.ProxyTracerProvider):
            provider: TracerProvider = _GatedTracerProvider(resource=Resource.create({"service.name": "energy-tests"}))
            otel_trace.set_tracer_provider(provider)
        elif isinstance(current, TracerProvider):
            provider = current
        else:
            raise TracingError(
                f"Cannot capture spans: the installed provider {type(current).__name__} is not the SDK's."
            )
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        _exporter = exporter
        return exporter


@contextmanager
def capture_spans() -> Iterator[InMemorySpanExporter]:
    """Record spans for the block and yield the exporter (cleared before and after: read it inside).

    Raises:
        TracingError: see :func:`span_exporter`.
    """
    global _active  # noqa: PLW0603 - see span_exporter
    exporter = span_exporter()
    exporter.clear()
    _active += 1
    try:
        yield exporter
    finally:
        _active -= 1
        exporter.clear()
