"""Pure ASGI middlewares: HTTP metrics and HTTP server spans (no web framework import).

Outermost first they go right after the correlation-id middleware: tracing, then metrics.
For Starlette/FastAPI wiring helpers see :mod:`energy_monitoring.web`.

Example:
    >>> from energy_monitoring.middleware import MetricsMiddleware, TracingMiddleware
    >>> async def app(scope, receive, send): ...
    >>> wrapped = TracingMiddleware(MetricsMiddleware(app))
"""

from __future__ import annotations

from energy_monitoring._asgi import UNMATCHED_ROUTE
from energy_monitoring._http_metrics import MetricsMiddleware
from energy_monitoring._http_tracing import TracingMiddleware

__all__ = ["UNMATCHED_ROUTE", "MetricsMiddleware", "TracingMiddleware"]
