"""Prometheus metrics: the seed's module functions, per-service registries, exposition.

Example:
    >>> from energy_monitoring.metrics import increment_counter, set_gauge, time_it
    >>> increment_counter("api.requests", tags={"endpoint": "/users", "method": "GET"})
    >>> set_gauge("active_connections", 45)
    >>> @time_it("database.query")
    ... async def get_user(user_id: str) -> None:
    ...     pass
"""

from __future__ import annotations

from energy_monitoring._api import (
    get_registry,
    increment_counter,
    observe,
    set_default_registry,
    set_gauge,
    setup_metrics,
    time_it,
    use_registry,
)
from energy_monitoring._errors import MetricConflictError, MetricNameError, MetricsError, MetricValueError
from energy_monitoring._exposition import MetricsApp, render_metrics
from energy_monitoring._family import OVERFLOW_VALUE, MetricFamily
from energy_monitoring._multiprocess import (
    MULTIPROC_ENV,
    check_multiprocess_setup,
    mark_process_dead,
    multiprocess_dir,
    multiprocess_registry,
)
from energy_monitoring._naming import duration_name, label_name, metric_name
from energy_monitoring._registry import DEFAULT_BUCKETS, DEFAULT_MAX_LABEL_SETS, GaugeMode, MetricsRegistry
from energy_monitoring._timing import Timer

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_MAX_LABEL_SETS",
    "MULTIPROC_ENV",
    "OVERFLOW_VALUE",
    "GaugeMode",
    "MetricConflictError",
    "MetricFamily",
    "MetricNameError",
    "MetricValueError",
    "MetricsApp",
    "MetricsError",
    "MetricsRegistry",
    "Timer",
    "check_multiprocess_setup",
    "duration_name",
    "get_registry",
    "increment_counter",
    "label_name",
    "mark_process_dead",
    "metric_name",
    "metrics_app",
    "multiprocess_dir",
    "multiprocess_registry",
    "observe",
    "render_metrics",
    "set_default_registry",
    "set_gauge",
    "setup_metrics",
    "time_it",
    "use_registry",
]


def metrics_app(registry: MetricsRegistry | None = None) -> MetricsApp:
    """Return a mountable ``/metrics`` ASGI app (see :class:`MetricsApp`).

    Example:
        >>> app = metrics_app()  # app.mount("/metrics", app) or app.add_route("/metrics", app)
    """
    return MetricsApp(registry)
