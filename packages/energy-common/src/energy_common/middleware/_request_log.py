"""Request log middleware: one structured line per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from energy_common.context import get_correlation_id

__all__ = ["DEFAULT_EXCLUDE", "RequestLogMiddleware"]

#: Paths not logged by default (``*`` at the end matches a prefix).
DEFAULT_EXCLUDE = ("/health*", "/metrics")


def _route_template(scope: Scope) -> str | None:
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else None


class RequestLogMiddleware:
    """Log one line per HTTP request after the response: method, route template, status,
    duration, client and request id.

    The route template (``/users/{user_id}``) is read from ``scope["route"]`` after the
    app ran, so lines group by endpoint and carry no ids; the raw path is in ``path``.
    Level: INFO below 500, ERROR from 500 (the traceback is logged by the error layer).

    Args:
        app: The ASGI app to wrap.
        exclude: Paths not to log; an entry ending in ``*`` matches a prefix.
        logger_name: Name of the stdlib logger the lines go to.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        logger_name: str = "energy.request",
    ) -> None:
        self.app = app
        self.logger = logging.getLogger(logger_name)
        self._exact = frozenset(item for item in exclude if not item.endswith("*"))
        self._prefixes = tuple(item[:-1] for item in exclude if item.endswith("*"))

    def _excluded(self, path: str) -> bool:
        return path in self._exact or (bool(self._prefixes) and path.startswith(self._prefixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and log it once the app has finished."""
        if scope["type"] != "http" or self._excluded(scope["path"]):
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self._log(scope, status, time.perf_counter() - start)

    def _log(self, scope: Scope, status: int, duration_s: float) -> None:
        level = logging.INFO if status < 500 else logging.ERROR
        if not self.logger.isEnabledFor(level):
            return
        try:
            template = _route_template(scope)
            client = scope.get("client")
            duration_ms = round(duration_s * 1000.0, 3)
            # makeRecord + handle instead of logger.log(): skips the caller lookup (a stack
            # walk per request), which names this module anyway.
            record = self.logger.makeRecord(
                self.logger.name,
                level,
                __file__,
                0,
                "%s %s %d %.1f ms",
                (scope["method"], template or scope["path"], status, duration_ms),
                None,
                extra={
                    "event": "http_request",
                    "http_method": scope["method"],
                    "route": template,
                    "path": scope["path"],
                    "status_code": status,
                    "duration_ms": duration_ms,
                    "client": client[0] if client else None,
                    "request_id": get_correlation_id(),
                },
            )
            self.logger.handle(record)
        except Exception:  # noqa: BLE001 - telemetry never raises into the request
            return
