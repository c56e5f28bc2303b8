"""The exceptions of energy-monitoring, rooted in :class:`energy_common.exceptions.EnergyError`.

::

    EnergyError (energy_common)
    ├── MetricsError                500  METRICS_ERROR
    │   ├── MetricNameError         500  METRIC_NAME_INVALID
    │   ├── MetricConflictError     500  METRIC_CONFLICT
    │   └── MetricValueError        500  METRIC_VALUE_INVALID
    └── TracingError                500  TRACING_ERROR

They signal programming or configuration mistakes (a name reused with another type or
label set, a bad sample ratio). Runtime failures of telemetry (an exporter that is down,
a scrape that fails) are logged and never raised into business code.
"""

from __future__ import annotations

from energy_common.exceptions import EnergyError

__all__ = ["MetricConflictError", "MetricNameError", "MetricValueError", "MetricsError", "TracingError"]


class MetricsError(EnergyError):
    """Umbrella for metric definition and recording mistakes."""

    error_code = "METRICS_ERROR"
    status_code = 500
    default_message = "A metrics error occurred."


class MetricNameError(MetricsError):
    """A metric or label name cannot be turned into a valid Prometheus name."""

    error_code = "METRIC_NAME_INVALID"
    default_message = "The metric name is invalid."


class MetricConflictError(MetricsError):
    """A metric name is already taken by another type, or is used with another label set."""

    error_code = "METRIC_CONFLICT"
    default_message = "The metric conflicts with an existing one."


class MetricValueError(MetricsError):
    """A value was rejected (e.g. a negative counter increment)."""

    error_code = "METRIC_VALUE_INVALID"
    default_message = "The metric value is invalid."


class TracingError(EnergyError):
    """Tracing was configured with invalid options (exporter, sample ratio)."""

    error_code = "TRACING_ERROR"
    status_code = 500
    default_message = "Tracing is misconfigured."
