"""Tests for the energy_monitoring package surface: __all__, __version__, import footprint."""

from __future__ import annotations

import json
import subprocess
import sys

import energy_monitoring
import energy_monitoring.metrics
import energy_monitoring.middleware
import energy_monitoring.propagation
import energy_monitoring.tracing
import pytest


def test_version_and_all_are_pinned() -> None:
    """The top package exports exactly this sorted API and its version."""
    assert energy_monitoring.__version__ == "0.1.0"
    assert energy_monitoring.__all__ == [
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


@pytest.mark.parametrize(
    "module",
    [
        energy_monitoring,
        energy_monitoring.metrics,
        energy_monitoring.middleware,
        energy_monitoring.propagation,
        energy_monitoring.tracing,
    ],
)
def test_public_modules_have_sorted_complete_all(module: object) -> None:
    """Every public module's __all__ is sorted (constants, classes, functions, as ruff does) and complete."""
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))
    assert all(hasattr(module, name) for name in names)


def test_top_package_does_not_import_web_or_heavy_libraries() -> None:
    """import energy_monitoring (and its core modules) pulls in no web framework, database or HTTP client."""
    code = (
        "import sys, json, energy_monitoring, energy_monitoring.metrics, energy_monitoring.tracing, "
        "energy_monitoring.middleware, energy_monitoring.propagation; "
        "print(json.dumps(sorted(m for m in ('fastapi', 'starlette', 'sqlalchemy', 'redis', 'httpx') if m in sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(result.stdout) == []
