"""One metric family: its prometheus-client metric, label names, children cache and guard.

The hot path of :meth:`MetricsRegistry.increment_counter` is two dict lookups (family by
raw name, child by the tags' items) and the child's ``inc``. The slow path, taken once per
new tag combination, validates the tag keys, applies the cardinality guard and fills the
cache.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Mapping, Sequence
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from energy_monitoring._errors import MetricConflictError
from energy_monitoring._naming import MetricKind, label_name

__all__ = ["OVERFLOW_VALUE", "MetricFamily"]

logger = logging.getLogger("energy_monitoring.metrics")

#: Label value given to every non-constant label of the overflow series.
OVERFLOW_VALUE = "__overflow__"

M = TypeVar("M", Counter, Gauge, Histogram)


class MetricFamily(Generic[M]):
    """A registered metric with a bounded, cached set of labelled children.

    Created by :class:`~energy_monitoring.metrics.MetricsRegistry`; do not build it
    directly.

    Attributes:
        name: The exposed Prometheus name (``api_requests_total``).
        kind: ``"counter"``, ``"gauge"`` or ``"histogram"``.
        labelnames: The label names set by callers, sorted (constant labels excluded).
        max_label_sets: Bound on distinct label sets before new ones go to the overflow series.
    """

    __slots__ = (
        "_by_values",
        "_const_values",
        "_key_cache",
        "_lock",
        "_overflow",
        "_warned",
        "kind",
        "labelnames",
        "max_label_sets",
        "metric",
        "name",
    )

    def __init__(
        self,
        name: str,
        kind: MetricKind,
        metric: M,
        labelnames: Sequence[str],
        const_values: Sequence[str],
        *,
        max_label_sets: int,
    ) -> None:
        self.name = name
        self.kind: MetricKind = kind
        self.metric: M = metric
        self.labelnames: tuple[str, ...] = tuple(labelnames)
        self.max_label_sets = max_label_sets
        self._const_values = tuple(const_values)
        self._by_values: dict[tuple[str, ...], M] = {}
        # Keyed by the caller's tags as given (tuple of items, any order): the hot path.
        self._key_cache: dict[Hashable, M] = {}
        self._overflow: M | None = None
        self._warned = False
        self._lock = threading.Lock()

    @property
    def key_cache(self) -> dict[Hashable, M]:
        """The children by tags key (``tuple(tags.items())``): read it on hot paths, never write."""
        return self._key_cache

    def child(self, tags: Mapping[str, object] | None = None) -> M:
        """Return the child for ``tags`` (validated, cached, bounded by the cardinality guard).

        Raises:
            MetricConflictError: the tag keys differ from the family's label names.
        """
        items = tuple(tags.items()) if tags else ()
        try:
            return self._key_cache[items]
        except KeyError:
            pass
        except TypeError:  # an unhashable tag value: resolve without caching
            return self._child_for(self._values(tags))
        child = self._child_for(self._values(tags))
        if len(self._key_cache) < 4 * (self.max_label_sets + 1):
            self._key_cache[items] = child
        return child

    def child_for_values(self, values: tuple[str, ...]) -> M:
        """Return the child for label values in ``labelnames`` order (no key validation)."""
        child = self._by_values.get(values)
        return child if child is not None else self._child_for(values)

    def _values(self, tags: Mapping[str, object] | None) -> tuple[str, ...]:
        given = {label_name(key, self.kind): value for key, value in (tags or {}).items()}
        if tuple(sorted(given)) != self.labelnames:
            raise MetricConflictError(
                f"Metric {self.name!r} has labels {list(self.labelnames)} but was called with tags "
                f"{sorted(given)}; use the same tag keys on every call (or another metric name).",
                {"metric": self.name, "labels": list(self.labelnames), "tags": sorted(given)},
            )
        return tuple(str(given[label]) for label in self.labelnames)

    def _child_for(self, values: tuple[str, ...]) -> M:
        with self._lock:
            child = self._by_values.get(values)
            if child is not None:
                return child
            if len(self._by_values) >= self.max_label_sets:
                return self._overflow_child()
            child = self._make(values)
            self._by_values[values] = child
            return child

    def _make(self, values: tuple[str, ...]) -> M:
        full = self._const_values + values
        return self.metric.labels(*full) if full else self.metric

    def _overflow_child(self) -> M:
        if self._overflow is None:
            self._overflow = self._make(tuple(OVERFLOW_VALUE for _ in self.labelnames))
        if not self._warned:
            self._warned = True
            logger.warning(
                "Metric %s reached its bound of %d label sets; new label sets are counted in the "
                "series whose labels are %r. Check for unbounded tag values (ids, raw paths).",
                self.name,
                self.max_label_sets,
                OVERFLOW_VALUE,
            )
        return self._overflow

    @property
    def label_set_count(self) -> int:
        """Number of distinct label sets recorded (the overflow series excluded)."""
        return len(self._by_values)

    @property
    def overflowed(self) -> bool:
        """Tell whether at least one label set went to the overflow series."""
        return self._overflow is not None
