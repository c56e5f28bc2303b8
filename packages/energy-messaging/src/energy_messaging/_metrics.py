"""The metrics seam of energy-messaging: a Protocol any registry can satisfy.

energy-messaging never imports energy-monitoring: the MQTT manager and the event bus
record into any object with these three methods (energy-monitoring's
``MetricsRegistry`` has them), or into nothing when none is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["MetricsSink", "is_metrics_sink"]

_METHODS = ("increment_counter", "set_gauge", "observe_duration")


class MetricsSink(Protocol):
    """Where energy-messaging records its metrics (energy-monitoring's ``MetricsRegistry`` is one).

    Names are dotted (``mqtt.messages.received``); the sink adds its namespace and the
    Prometheus suffixes (``<namespace>_mqtt_messages_received_total``).
    """

    def increment_counter(self, name: str, value: float = 1, tags: Mapping[str, object] | None = None) -> None:
        """Add ``value`` to a counter (0 creates the labelled series)."""

    def set_gauge(self, name: str, value: float, tags: Mapping[str, object] | None = None) -> None:
        """Set a gauge."""

    def observe_duration(self, name: str, seconds: float, tags: Mapping[str, object] | None = None) -> None:
        """Record a duration in the ``<name>_duration_seconds`` histogram."""


def is_metrics_sink(value: object) -> bool:
    """Tell whether ``value`` has the :class:`MetricsSink` methods (checked once, when options are built).

    Example:
        >>> is_metrics_sink(object())
        False
    """
    return all(callable(getattr(value, name, None)) for name in _METHODS)
