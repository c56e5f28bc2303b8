"""energy-monitoring: Prometheus metrics and OpenTelemetry tracing for platform services.

Public modules: :mod:`energy_monitoring.metrics`, :mod:`energy_monitoring.tracing`,
:mod:`energy_monitoring.middleware` (pure ASGI), :mod:`energy_monitoring.propagation`
and :mod:`energy_monitoring.web` (extra ``web``; never imported from here).
"""

from energy_monitoring.__about__ import __version__
from energy_monitoring._errors import MetricConflictError, MetricNameError, MetricsError, MetricValueError, TracingError
from energy_monitoring._exposition import MetricsApp, render_metrics
from energy_monitoring._http_metrics import MetricsMiddleware
from energy_monitoring._http_tracing import TracingMiddleware
from energy_monitoring._registry import MetricsRegistry
from energy_monitoring.metrics import (
    get_registry,
    increment_counter,
    metrics_app,
    observe,
    set_gauge,
    setup_metrics,
    time_it,
)
from energy_monitoring.tracing import get_tracer, setup_tracing, shutdown_tracing, trace

__all__ = [
    "MetricConflictError",
    "MetricNameError",
    "MetricValueError",
    "MetricsApp",
    "MetricsError",
    "MetricsMiddleware",
    "MetricsRegistry",
    "TracingError",
    "TracingMiddleware",
    "__version__",
    "get_registry",
    "get_tracer",
    "increment_counter",
    "metrics_app",
    "observe",
    "render_metrics",
    "set_gauge",
    "setup_metrics",
    "setup_tracing",
    "shutdown_tracing",
    "time_it",
    "trace",
]
