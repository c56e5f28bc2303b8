"""Pure functions that turn the platform's dotted names into Prometheus names.

Rules (see the package README):

* lower case; every character outside ``[a-z0-9_]`` becomes ``_`` (dots, dashes,
  spaces, colons: colons are reserved for recording rules); runs of ``_`` collapse and
  leading/trailing ``_`` are dropped; a leading digit gets a ``_`` prefix;
* counters end in ``_total`` (added once: ``api.requests`` → ``api_requests_total``);
* durations end in ``_seconds`` (``database.query`` → ``database_query_duration_seconds``);
* label names follow the same mapping and may not start with ``__`` (reserved).

Example:
    >>> metric_name("api.requests", "counter")
    'api_requests_total'
    >>> duration_name("database.query")
    'database_query_duration_seconds'
    >>> label_name("http-method")
    'http_method'
"""

from __future__ import annotations

import re
from typing import Literal

from energy_monitoring._errors import MetricNameError

__all__ = ["MetricKind", "base_name", "duration_name", "label_name", "metric_name"]

MetricKind = Literal["counter", "gauge", "histogram"]

_INVALID = re.compile(r"[^a-z0-9_]+")
_RUNS = re.compile(r"_{2,}")
#: Labels prometheus-client or the exposition format reserve for themselves.
_RESERVED_LABELS = frozenset({"le", "quantile"})
_MAX_NAME = 200


def _sanitize(raw: str, what: str) -> str:
    if not isinstance(raw, str):
        raise MetricNameError(f"A {what} name must be a string, got {type(raw).__name__}.", {"name": repr(raw)})
    name = _RUNS.sub("_", _INVALID.sub("_", raw.strip().lower())).strip("_")
    if not name:
        raise MetricNameError(
            f"The {what} name {raw!r} has no letters or digits; use a name such as 'api.requests'.",
            {"name": raw},
        )
    if len(name) > _MAX_NAME:
        raise MetricNameError(f"The {what} name {raw!r} is longer than {_MAX_NAME} characters.", {"name": raw[:50]})
    if name[0].isdigit():
        name = f"_{name}"
    return name


def base_name(raw: str, namespace: str = "") -> str:
    """Return the sanitized name of ``raw`` with the namespace prefix, without a type suffix.

    Raises:
        MetricNameError: ``raw`` has no usable characters or is too long.
    """
    name = _sanitize(raw, "metric")
    if namespace and not name.startswith(f"{namespace}_"):
        name = f"{namespace}_{name}"
    return name


def metric_name(raw: str, kind: MetricKind, namespace: str = "") -> str:
    """Return the exposed Prometheus name of a metric (``_total`` added for counters).

    Raises:
        MetricNameError: ``raw`` has no usable characters or is too long.
    """
    name = base_name(raw, namespace)
    if kind == "counter" and not name.endswith("_total"):
        name = f"{name}_total"
    return name


def duration_name(raw: str) -> str:
    """Return the name of a duration histogram: seconds, with the ``_seconds`` unit suffix.

    ``x_seconds`` stays, ``x_duration`` gets ``_seconds``, anything else gets
    ``_duration_seconds``.

    Raises:
        MetricNameError: ``raw`` has no usable characters or is too long.
    """
    name = _sanitize(raw, "metric")
    if name.endswith("_seconds"):
        return name
    if name.endswith("_duration"):
        return f"{name}_seconds"
    return f"{name}_duration_seconds"


def label_name(raw: str, kind: MetricKind = "counter") -> str:
    """Return the Prometheus label name for a tag key.

    Raises:
        MetricNameError: the key is empty, starts with ``__`` or is reserved (``le`` on
            histograms, ``quantile``).
    """
    if isinstance(raw, str) and raw.startswith("__"):
        raise MetricNameError(f"Label names starting with '__' are reserved by Prometheus: {raw!r}.", {"label": raw})
    name = _sanitize(raw, "label")
    if name in _RESERVED_LABELS and (kind == "histogram" or name == "quantile"):
        raise MetricNameError(
            f"The label name {raw!r} is reserved by Prometheus for this metric type; rename the tag.",
            {"label": raw},
        )
    return name
