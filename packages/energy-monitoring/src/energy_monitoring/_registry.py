"""A per-service metrics registry: namespace, constant labels, cached families.

Example:
    >>> registry = MetricsRegistry("billing", const_labels={"service": "billing"})
    >>> registry.increment_counter("api.requests", tags={"method": "GET"})
    >>> registry.counter("api.requests", labels=["method"]).name
    'billing_api_requests_total'
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from energy_monitoring._errors import MetricConflictError, MetricsError, MetricValueError
from energy_monitoring._family import MetricFamily
from energy_monitoring._naming import MetricKind, base_name, duration_name, label_name, metric_name

__all__ = ["DEFAULT_BUCKETS", "DEFAULT_MAX_LABEL_SETS", "GaugeMode", "MetricsRegistry"]

logger = logging.getLogger("energy_monitoring.metrics")

#: Histogram buckets (seconds) used unless a metric asks for others: 5 ms .. 10 s.
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Default bound on distinct label sets per metric (cardinality guard).
DEFAULT_MAX_LABEL_SETS = 1000

#: How gauges of several worker processes combine in multiprocess mode.
GaugeMode = Literal["all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent"]


class MetricsRegistry:
    """Metrics of one service: a prometheus-client registry plus naming and guard rules.

    Args:
        namespace: Prefix of every metric name (``billing`` → ``billing_api_requests_total``).
        const_labels: Labels with fixed values added to every series (``service``, ``version``).
        registry: The prometheus-client registry to register in; a private one by default.
            Pass ``prometheus_client.REGISTRY`` to share the process-wide one.
        max_label_sets: Cardinality guard: distinct label sets kept per metric; past it new
            sets are counted under the ``__overflow__`` series and a warning is logged once.
        buckets: Default histogram buckets.
        strict: Raise :class:`MetricsError` on misuse (name clash, changed tags, negative
            increment). With ``False`` the offending call is logged and dropped instead.
        gauge_mode: Multiprocess mode of gauges created by :meth:`set_gauge` (see README).

    Raises:
        MetricNameError: the namespace or a constant label name is unusable.
    """

    def __init__(
        self,
        namespace: str = "",
        *,
        const_labels: Mapping[str, object] | None = None,
        registry: CollectorRegistry | None = None,
        max_label_sets: int = DEFAULT_MAX_LABEL_SETS,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        strict: bool = True,
        gauge_mode: GaugeMode = "livesum",
    ) -> None:
        if max_label_sets < 1:
            raise MetricsError("max_label_sets must be at least 1.", {"max_label_sets": max_label_sets})
        self.namespace = base_name(namespace) if namespace else ""
        self.const_labels: dict[str, str] = {label_name(k): str(v) for k, v in (const_labels or {}).items()}
        self.collector_registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.max_label_sets = max_label_sets
        self.buckets = tuple(buckets)
        self.strict = strict
        self.gauge_mode: GaugeMode = gauge_mode
        self._families: dict[str, MetricFamily[Any]] = {}
        self._counters: dict[str, MetricFamily[Counter]] = {}
        # Raw name -> the family's children by tags key: the hot path is two dict lookups.
        self.counter_children: dict[str, dict[Hashable, Counter]] = {}
        self._gauges: dict[str, MetricFamily[Gauge]] = {}
        self._histograms: dict[str, MetricFamily[Histogram]] = {}
        self._durations: dict[str, MetricFamily[Histogram]] = {}
        self._reported: set[str] = set()
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"MetricsRegistry(namespace={self.namespace!r}, const_labels={self.const_labels!r})"

    # ----------------------------------------------------------------- definitions

    def counter(self, name: str, *, labels: Iterable[str] = (), description: str = "") -> MetricFamily[Counter]:
        """Define (or fetch) a counter; ``api.requests`` is exposed as ``api_requests_total``.

        Raises:
            MetricNameError: the name or a label name is unusable.
            MetricConflictError: the name is taken by another type or label set.
        """
        return self._define(metric_name(name, "counter", self.namespace), "counter", labels, description)

    def gauge(
        self,
        name: str,
        *,
        labels: Iterable[str] = (),
        description: str = "",
        multiprocess_mode: GaugeMode | None = None,
    ) -> MetricFamily[Gauge]:
        """Define (or fetch) a gauge; ``multiprocess_mode`` defaults to the registry's ``gauge_mode``.

        Raises:
            MetricNameError: the name or a label name is unusable.
            MetricConflictError: the name is taken by another type or label set.
        """
        mode = multiprocess_mode or self.gauge_mode
        return self._define(metric_name(name, "gauge", self.namespace), "gauge", labels, description, mode=mode)

    def histogram(
        self,
        name: str,
        *,
        labels: Iterable[str] = (),
        description: str = "",
        buckets: Sequence[float] | None = None,
    ) -> MetricFamily[Histogram]:
        """Define (or fetch) a histogram with ``buckets`` (default: the registry's).

        Raises:
            MetricNameError: the name or a label name is unusable.
            MetricConflictError: the name is taken by another type, label set or buckets.
        """
        full = metric_name(name, "histogram", self.namespace)
        return self._define(full, "histogram", labels, description, buckets=buckets)

    def _define(
        self,
        name: str,
        kind: MetricKind,
        labels: Iterable[str],
        description: str,
        *,
        buckets: Sequence[float] | None = None,
        mode: GaugeMode = "livesum",
    ) -> MetricFamily[Any]:
        labelnames = tuple(sorted({label_name(label, kind) for label in labels}))
        clash = set(labelnames) & set(self.const_labels)
        if clash:
            raise MetricConflictError(
                f"Tags {sorted(clash)} of metric {name!r} are constant labels of this registry; drop them.",
                {"metric": name, "labels": sorted(clash)},
            )
        bounds = tuple(float(b) for b in buckets) if buckets is not None else None
        with self._lock:
            family = self._families.get(name)
            if family is None:
                family = self._register(
                    name=name,
                    kind=kind,
                    labelnames=labelnames,
                    description=description,
                    buckets=bounds or self.buckets,
                    mode=mode,
                )
                self._families[name] = family
                return family
        if family.kind != kind:
            raise MetricConflictError(
                f"Metric {name!r} is already a {family.kind}; it cannot also be a {kind}. Pick another name.",
                {"metric": name, "existing": family.kind, "requested": kind},
            )
        if family.labelnames != labelnames:
            raise MetricConflictError(
                f"Metric {name!r} was defined with labels {list(family.labelnames)}, not {list(labelnames)}; "
                "keep the label set of a metric fixed (or use another name).",
                {"metric": name, "labels": list(family.labelnames), "requested": list(labelnames)},
            )
        upper = getattr(family.metric, "_upper_bounds", None)
        if bounds is not None and upper is not None and tuple(upper[:-1]) != tuple(sorted(bounds)):
            raise MetricConflictError(
                f"Histogram {name!r} already exists with other buckets; define its buckets once.",
                {"metric": name},
            )
        return family

    def _register(
        self,
        *,
        name: str,
        kind: MetricKind,
        labelnames: tuple[str, ...],
        description: str,
        buckets: tuple[float, ...],
        mode: GaugeMode,
    ) -> MetricFamily[Any]:
        doc = description or name.replace("_", " ")
        all_labels = (*self.const_labels, *labelnames)
        metric: Counter | Gauge | Histogram
        try:
            if kind == "counter":
                metric = Counter(name, doc, all_labels, registry=self.collector_registry)
            elif kind == "gauge":
                metric = Gauge(name, doc, all_labels, registry=self.collector_registry, multiprocess_mode=mode)
            else:
                metric = Histogram(name, doc, all_labels, registry=self.collector_registry, buckets=buckets)
        except ValueError as exc:
            raise MetricConflictError(
                f"Metric {name!r} collides with a series already in the registry ({exc}); pick another name.",
                {"metric": name},
            ) from exc
        return MetricFamily(
            name, kind, metric, labelnames, tuple(self.const_labels.values()), max_label_sets=self.max_label_sets
        )

    # ----------------------------------------------------------------- recording (hot path)

    def increment_counter(self, name: str, value: float = 1, tags: Mapping[str, object] | None = None) -> None:
        """Add ``value`` (default 1) to the counter ``name`` for ``tags``.

        Example:
            >>> MetricsRegistry().increment_counter("api.requests", tags={"endpoint": "/users"})

        Raises:
            MetricsError: in strict mode, on a name clash, changed tag keys or a negative value.
        """
        try:
            child = self.counter_children[name][tuple(tags.items()) if tags else ()]
        except (KeyError, TypeError, AttributeError):
            child = self._slow(self._counters, name, tags, lambda: self.counter(name, labels=tags or ()))
            if child is None:
                return
            self.counter_children[name] = self._counters[name].key_cache
        try:
            child.inc(value)
        except ValueError as exc:
            self.reject_increment(name, value, exc)

    def reject_increment(self, name: str, value: float, exc: ValueError) -> None:
        """Report a refused counter increment (raise in strict mode, else log once)."""
        self._fail(MetricValueError(f"Counter {name!r} cannot be incremented by {value!r}: {exc}"), exc)

    def set_gauge(self, name: str, value: float, tags: Mapping[str, object] | None = None) -> None:
        """Set the gauge ``name`` for ``tags`` to ``value``.

        Raises:
            MetricsError: in strict mode, on a name clash or changed tag keys.
        """
        try:
            child = self._gauges[name].key_cache[tuple(tags.items()) if tags else ()]
        except (KeyError, TypeError, AttributeError):
            child = self._slow(self._gauges, name, tags, lambda: self.gauge(name, labels=tags or ()))
            if child is None:
                return
        child.set(value)

    def observe(
        self,
        name: str,
        value: float,
        tags: Mapping[str, object] | None = None,
        *,
        buckets: Sequence[float] | None = None,
    ) -> None:
        """Record ``value`` in the histogram ``name`` (``buckets`` apply when it is created).

        Raises:
            MetricsError: in strict mode, on a name clash or changed tag keys.
        """
        try:
            child = self._histograms[name].key_cache[tuple(tags.items()) if tags else ()]
        except (KeyError, TypeError, AttributeError):
            child = self._slow(
                self._histograms, name, tags, lambda: self.histogram(name, labels=tags or (), buckets=buckets)
            )
            if child is None:
                return
        child.observe(value)

    def observe_duration(self, name: str, seconds: float, tags: Mapping[str, object] | None = None) -> None:
        """Record a duration in the ``<name>_duration_seconds`` histogram (used by ``time_it``).

        Raises:
            MetricsError: in strict mode, on a name clash or changed tag keys.
        """
        try:
            child = self._durations[name].key_cache[tuple(tags.items()) if tags else ()]
        except (KeyError, TypeError, AttributeError):
            child = self._slow(
                self._durations, name, tags, lambda: self.histogram(duration_name(name), labels=tags or ())
            )
            if child is None:
                return
        child.observe(seconds)

    def _slow(self, cache: dict[str, MetricFamily[Any]], name: str, tags: Any, define: Any) -> Any:
        try:
            family = cache.get(name) if isinstance(name, str) else None
            if family is None:
                family = define()
                cache[name] = family
            return family.child(tags)
        except MetricsError as exc:
            self._fail(exc, None)
        except (TypeError, AttributeError) as exc:
            self._fail(MetricsError(f"Bad arguments for metric {name!r}: tags must be a mapping ({exc})."), exc)
        return None

    def _fail(self, error: MetricsError, cause: BaseException | None) -> None:
        if self.strict:
            raise error from cause
        key = f"{type(error).__name__}:{error.message}"
        if key not in self._reported:
            self._reported.add(key)
            logger.error("Metric call dropped: %s", error.message)
