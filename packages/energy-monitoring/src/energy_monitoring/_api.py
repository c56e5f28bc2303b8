"""The default registry and the seed's module-level functions that record into it."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from prometheus_client import REGISTRY

from energy_monitoring._multiprocess import check_multiprocess_setup
from energy_monitoring._registry import DEFAULT_MAX_LABEL_SETS, MetricsRegistry
from energy_monitoring._timing import Timer

__all__ = [
    "get_registry",
    "increment_counter",
    "observe",
    "set_default_registry",
    "set_gauge",
    "setup_metrics",
    "time_it",
    "use_registry",
]

_default: MetricsRegistry | None = None
_lock = threading.Lock()


def get_registry() -> MetricsRegistry:
    """Return the default registry (created on first use on prometheus-client's global REGISTRY)."""
    global _default  # noqa: PLW0603 - the process-wide default, like logging's root logger
    registry = _default
    if registry is None:
        with _lock:
            if _default is None:
                _default = MetricsRegistry(registry=REGISTRY)
            registry = _default
    return registry


def set_default_registry(registry: MetricsRegistry) -> None:
    """Make ``registry`` the one used by the module functions and the default ``/metrics``."""
    global _default  # noqa: PLW0603 - see get_registry
    _default = registry


@contextmanager
def use_registry(registry: MetricsRegistry | None = None) -> Iterator[MetricsRegistry]:
    """Swap the default registry for the duration of a block (a testing switch).

    Example:
        >>> with use_registry() as registry:
        ...     increment_counter("jobs.done")
        >>> registry.collector_registry.get_sample_value("jobs_done_total")
        1.0
    """
    global _default  # noqa: PLW0603 - see get_registry
    previous = _default
    current = registry if registry is not None else MetricsRegistry()
    _default = current
    try:
        yield current
    finally:
        _default = previous


def setup_metrics(
    service_name: str | None = None,
    *,
    namespace: str = "",
    version: str | None = None,
    const_labels: Mapping[str, object] | None = None,
    max_label_sets: int = DEFAULT_MAX_LABEL_SETS,
    strict: bool = True,
) -> MetricsRegistry:
    """Create the service's registry on prometheus-client's global REGISTRY and make it the default.

    ``service`` and ``version`` become constant labels. In multiprocess mode the directory
    is checked.

    Raises:
        MetricsError: multiprocess mode is misconfigured (see :func:`check_multiprocess_setup`).
        MetricNameError: the namespace or a label name is unusable.
    """
    check_multiprocess_setup()
    labels: dict[str, object] = {}
    if service_name:
        labels["service"] = service_name
    if version:
        labels["version"] = version
    labels.update(const_labels or {})
    registry = MetricsRegistry(
        namespace, const_labels=labels, registry=REGISTRY, max_label_sets=max_label_sets, strict=strict
    )
    set_default_registry(registry)
    return registry


def increment_counter(name: str, value: float = 1, tags: Mapping[str, object] | None = None) -> None:
    """Add ``value`` to the counter ``name`` (exposed as ``<name>_total``) in the default registry.

    Example:
        >>> increment_counter("api.requests", tags={"endpoint": "/users", "method": "GET"})
    """
    registry = _default or get_registry()
    try:  # the hot path, inlined: two dict lookups and the child's inc
        child = registry.counter_children[name][tuple(tags.items()) if tags else ()]
    except (KeyError, TypeError, AttributeError):
        registry.increment_counter(name, value, tags)
        return
    try:
        child.inc(value)
    except ValueError as exc:
        registry.reject_increment(name, value, exc)


def set_gauge(name: str, value: float, tags: Mapping[str, object] | None = None) -> None:
    """Set the gauge ``name`` in the default registry.

    Example:
        >>> set_gauge("active_connections", 45)
    """
    (_default or get_registry()).set_gauge(name, value, tags)


def observe(
    name: str, value: float, tags: Mapping[str, object] | None = None, *, buckets: Sequence[float] | None = None
) -> None:
    """Record ``value`` in the histogram ``name`` of the default registry."""
    (_default or get_registry()).observe(name, value, tags, buckets=buckets)


def time_it(name: str, tags: Mapping[str, object] | None = None, *, registry: MetricsRegistry | None = None) -> Timer:
    """Time a function (sync or async) or a block into the ``<name>_duration_seconds`` histogram.

    Example:
        >>> @time_it("database.query")
        ... async def get_user(user_id: str) -> None:
        ...     pass
        >>> with time_it("report.render"):
        ...     pass
    """
    return Timer(name, tags, registry, get_registry)
