"""Pure ASGI middleware opening a server span per request (HTTP semantic conventions)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from energy_common.propagation import extract_context
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from energy_monitoring._asgi import ASGIApp, Message, Receive, Scope, Send, normalize_method, route_template
from energy_monitoring._tracer import _LazyTracer

__all__ = ["TracingMiddleware"]

logger = logging.getLogger("energy_monitoring.tracing")


class TracingMiddleware:
    """Opens a ``SERVER`` span for each HTTP request, continuing an incoming ``traceparent``.

    The span is named ``"{method} {route}"`` (``"GET /users/{user_id}"``; just the method
    when no route matched) and carries ``http.request.method``, ``url.path``,
    ``url.scheme``, ``http.route`` and ``http.response.status_code``. A 5xx answer or an
    escaping exception sets error status (the exception is recorded and re-raised).
    Non-HTTP scopes pass through untouched. Telemetry failures are logged, never raised.

    FastAPI versions with native OpenTelemetry support open their own server span when a
    global provider is installed. Wrapped around such an app, this middleware marks the
    request as observed so FastAPI does not open a second one; placed inside FastAPI's
    stack (``add_middleware``), it finds FastAPI's span already open and steps aside
    (pass ``FastAPI(telemetry={"tracing": False})`` to get this middleware's span instead).

    Args:
        app: The ASGI app to wrap.
        tracer_provider: Provider to use; OpenTelemetry's global one if None.
        exclude_paths: Raw paths not traced (e.g. ``/metrics``, ``/health``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer_provider: otel_trace.TracerProvider | None = None,
        exclude_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.exclude_paths = frozenset(exclude_paths)
        self._tracer = _LazyTracer("energy_monitoring.http", None, tracer_provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if (
            scope["type"] != "http"
            or scope.get("path") in self.exclude_paths
            or getattr(scope.get(_FASTAPI_KEY), "span", None) is not None
        ):
            await self.app(scope, receive, send)
            return
        method = normalize_method(scope.get("method", "GET"))
        root_path = scope.get("root_path", "")
        try:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ()) if k in _WANTED}
            parent = extract_context(headers) if headers else None
            span = self._tracer.get().start_span(
                method,
                context=parent,
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": method,
                    "url.path": scope.get("path", ""),
                    "url.scheme": scope.get("scheme", "http"),
                },
            )
            token = otel_context.attach(otel_trace.set_span_in_context(span, parent))
        except Exception:  # telemetry never raises into the request
            logger.exception("Could not start the request span")
            await self.app(scope, receive, send)
            return
        status = 0
        # FastAPI's native telemetry skips requests carrying this key: one server span, ours.
        marked = _FASTAPI_KEY not in scope
        if marked:
            scope[_FASTAPI_KEY] = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            status = status or 500
            try:
                span.record_exception(exc, escaped=True)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            except Exception:
                logger.debug("Could not record the exception on the span", exc_info=True)
            raise
        finally:
            try:
                route = route_template(scope, root_path)
                if route is not None:
                    span.set_attribute("http.route", route)
                    span.update_name(f"{method} {route}")
                if status:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                span.end()
            except Exception:
                logger.exception("Could not finish the request span")
            otel_context.detach(token)
            if marked:
                scope.pop(_FASTAPI_KEY, None)


#: Scope key of FastAPI's native OpenTelemetry telemetry (FastAPI >= 0.16x): its request
#: state while FastAPI's own server span is open; present (None) means "already observed".
_FASTAPI_KEY = "fastapi.telemetry"
_WANTED = frozenset({b"traceparent", b"tracestate", b"baggage"})
