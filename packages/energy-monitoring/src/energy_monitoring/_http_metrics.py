"""Pure ASGI middleware recording HTTP request metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from energy_monitoring._asgi import (
    UNMATCHED_ROUTE,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    normalize_method,
    route_template,
)
from energy_monitoring._registry import MetricsRegistry

__all__ = ["MetricsMiddleware"]

logger = logging.getLogger("energy_monitoring.metrics")

_STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}


class MetricsMiddleware:
    """Counts requests, times them and tracks the requests in flight (pure ASGI).

    Series (names get the registry's namespace prefix):

    * ``http_requests_total{method, route, status}`` where ``route`` is the matched route
      template (``/users/{user_id}``; ``unmatched`` when no route matched, never the raw
      path) and ``status`` the class (``2xx`` ... ``5xx``);
    * ``http_request_duration_seconds{method, route, status}`` histogram;
    * ``http_requests_in_progress{method}`` gauge (``livesum`` across workers).

    Non-HTTP scopes (lifespan, websocket) pass through untouched.

    Args:
        app: The ASGI app to wrap.
        registry: Where to record; the default registry at construction if None.
        exclude_paths: Raw paths not recorded (e.g. ``/metrics``, ``/health``).
        buckets: Duration histogram buckets (seconds).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: MetricsRegistry | None = None,
        exclude_paths: Iterable[str] = (),
        buckets: Iterable[float] | None = None,
    ) -> None:
        if registry is None:
            from energy_monitoring._api import get_registry  # noqa: PLC0415 - avoids an import cycle

            registry = get_registry()
        self.app = app
        self.registry = registry
        self.exclude_paths = frozenset(exclude_paths)
        labels = ("method", "route", "status")
        self._requests = registry.counter("http.requests", labels=labels, description="HTTP requests served")
        self._duration = registry.histogram(
            "http.request.duration.seconds",
            labels=labels,
            description="HTTP request duration in seconds",
            buckets=tuple(buckets) if buckets is not None else None,
        )
        self._in_progress = registry.gauge(
            "http.requests.in_progress",
            labels=("method",),
            description="HTTP requests being served",
            multiprocess_mode="livesum",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] != "http" or scope.get("path") in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        method = normalize_method(scope.get("method", "GET"))
        root_path = scope.get("root_path", "")
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_progress = self._in_progress.child_for_values((method,))
        in_progress.inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            status = 500
            raise
        finally:
            elapsed = time.perf_counter() - start
            try:
                in_progress.dec()
                route = route_template(scope, root_path) or UNMATCHED_ROUTE
                values = (method, route, _STATUS_CLASSES.get(status // 100, "unknown"))
                self._requests.child_for_values(values).inc()
                self._duration.child_for_values(values).observe(elapsed)
            except Exception:  # telemetry never raises into the request
                logger.exception("Recording HTTP metrics failed")
