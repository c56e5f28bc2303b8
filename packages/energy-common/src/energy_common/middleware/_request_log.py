"""Request log middleware: one structured line per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from energy_common.asgi import route_template
from energy_common.logging import log_fields, redact_text, text_is_clean

__all__ = ["DEFAULT_EXCLUDE", "RequestLogMiddleware"]

#: Paths not logged by default (``*`` at the end matches a prefix).
DEFAULT_EXCLUDE = ("/health*", "/metrics")


class RequestLogMiddleware:
    """Log one line per HTTP request after the response: method, route template, status,
    duration and client; the request id is the line's ``correlation_id``.

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
        root_path = scope.get("root_path", "")
        start = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self._log(scope, root_path, status, time.perf_counter() - start)

    def _log(self, scope: Scope, root_path: str, status: int, duration_s: float) -> None:
        level = logging.INFO if status < 500 else logging.ERROR
        if not self.logger.isEnabledFor(level):
            return
        template = route_template(scope, root_path)
        client = scope.get("client")
        duration_ms = round(duration_s * 1000.0, 3)
        method = scope["method"]
        # The path is the only client-controlled text in the line; method and client come
        # from the server, the template from the code. Check it once, then log "checked".
        path = scope["path"]
        if not text_is_clean(path):
            path = redact_text(path)
        log_fields(
            self.logger,
            level,
            f"{method} {template or path} {status} {duration_ms:.1f} ms",
            (),
            {
                "http_method": method,
                "route": template,
                "path": path,
                "status_code": status,
                "duration_ms": duration_ms,
                "client": client[0] if client else None,
            },
            checked=True,
        )
