"""Test helpers shipped as API: capture spans in memory, swap the metrics registry.

OpenTelemetry allows one global tracer provider per process, so tests cannot install a
fresh provider per test. :func:`span_exporter` installs (once) an SDK provider that
exports to an in-memory exporter, or adds that exporter to an SDK provider already
installed; :func:`capture_spans` clears it around a block.

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
            provider = TracerProvider(resource=Resource.create({"service.name": "energy-tests"}))
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
    """Capture the spans finished inside the block (the exporter is cleared before and after).

    Raises:
        TracingError: see :func:`span_exporter`.
    """
    exporter = span_exporter()
    exporter.clear()
    try:
        yield exporter
    finally:
        exporter.clear()
