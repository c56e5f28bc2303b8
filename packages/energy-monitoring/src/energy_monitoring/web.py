"""Starlette/FastAPI wiring for the monitoring middlewares and ``/metrics`` (extra ``web``).

With ``energy_common.middleware.setup_middleware`` pass :func:`instrumentation_middleware`
as its ``instrumentation`` argument (they are placed right after the correlation id);
otherwise call :func:`instrument_app`.

Example:
    >>> from fastapi import FastAPI
    >>> from energy_monitoring.web import add_metrics_route, instrument_app
    >>> app = FastAPI()
    >>> instrument_app(app, exclude_paths=["/metrics"])
    >>> add_metrics_route(app)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    from starlette.middleware import Middleware
except ImportError as exc:  # pragma: no cover - exercised in environments without the extra
    from energy_common._extras import missing_extra

    raise missing_extra("energy-monitoring", "web", exc) from exc

from opentelemetry import trace as otel_trace

from energy_monitoring._exposition import MetricsApp
from energy_monitoring._http_metrics import MetricsMiddleware
from energy_monitoring._http_tracing import TracingMiddleware
from energy_monitoring._registry import MetricsRegistry

__all__ = ["add_metrics_route", "instrument_app", "instrumentation_middleware"]


def instrumentation_middleware(
    *,
    registry: MetricsRegistry | None = None,
    tracer_provider: otel_trace.TracerProvider | None = None,
    exclude_paths: Iterable[str] = (),
    metrics: bool = True,
    tracing: bool = True,
) -> list[Middleware]:
    """Return ``[Middleware(TracingMiddleware), Middleware(MetricsMiddleware)]``, outermost first.

    Args:
        registry: Metrics registry; the default one if None.
        tracer_provider: Tracer provider; OpenTelemetry's global one if None.
        exclude_paths: Raw paths neither traced nor counted (``/metrics``, ``/health``).
        metrics: Include the metrics middleware.
        tracing: Include the tracing middleware.
    """
    excluded = tuple(exclude_paths)
    stack: list[Middleware] = []
    if tracing:
        stack.append(Middleware(TracingMiddleware, tracer_provider=tracer_provider, exclude_paths=excluded))
    if metrics:
        stack.append(Middleware(MetricsMiddleware, registry=registry, exclude_paths=excluded))
    return stack


def instrument_app(
    app: Any,
    *,
    registry: MetricsRegistry | None = None,
    tracer_provider: otel_trace.TracerProvider | None = None,
    exclude_paths: Iterable[str] = (),
    metrics: bool = True,
    tracing: bool = True,
) -> None:
    """Add the monitoring middlewares as the outermost ones of a Starlette/FastAPI app.

    Call it after your other ``add_middleware`` calls (and before the app starts) so that
    tracing wraps everything else.
    """
    stack = instrumentation_middleware(
        registry=registry,
        tracer_provider=tracer_provider,
        exclude_paths=exclude_paths,
        metrics=metrics,
        tracing=tracing,
    )
    for middleware in reversed(stack):  # add_middleware inserts at the outermost position
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)


def add_metrics_route(app: Any, path: str = "/metrics", *, registry: MetricsRegistry | None = None) -> None:
    """Serve the metrics at ``path`` on a Starlette/FastAPI app (hidden from the OpenAPI schema)."""
    app.add_route(path, MetricsApp(registry), include_in_schema=False)
