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

    The response carries the server span's context in a ``traceresponse`` header (W3C
    Trace Context Level 2: ``00-<trace id>-<span id>-<flags>``), so a client learns the
    trace id of its request without sending its own ``traceparent``; ``trace_response=False``
    leaves it out (the ids are random and say nothing about the service, but a public API
    may prefer not to show them). No header is added when the span is invalid (no SDK).

    FastAPI versions with native OpenTelemetry support open their own server span when a
    global provider is installed. Wrapped around such an app, this middleware marks the
    request as observed so FastAPI does not open a second one; placed inside FastAPI's
    stack (``add_middleware``), it finds FastAPI's span already open and steps aside
    (pass ``FastAPI(telemetry={"tracing": False})`` to get this middleware's span instead).

    Args:
        app: The ASGI app to wrap.
        tracer_provider: Provider to use; OpenTelemetry's global one if None.
        exclude_paths: Raw paths not traced (e.g. ``/metrics``, ``/health``).
        trace_response: Add the ``traceresponse`` header to each traced response.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer_provider: otel_trace.TracerProvider | None = None,
        exclude_paths: Iterable[str] = (),
        trace_response: bool = True,
    ) -> None:
        self.app = app
        self.exclude_paths = frozenset(exclude_paths)
        self.trace_response = trace_response
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

        echo = _traceresponse(span) if self.trace_response else None

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if echo is not None:
                    message = {**message, "headers": [*message.get("headers", ()), (b"traceresponse", echo)]}
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
            _finish(span, scope, root_path, method, status)
            otel_context.detach(token)
            if marked:
                scope.pop(_FASTAPI_KEY, None)


def _finish(span: otel_trace.Span, scope: Scope, root_path: str, method: str, status: int) -> None:
    """Name the span by the route the app matched, record the status, end it (never raises)."""
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


def _traceresponse(span: otel_trace.Span) -> bytes | None:
    """The W3C ``traceresponse`` value of a span (``00-<trace id>-<span id>-<flags>``), None if invalid."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}".encode()


#: Scope key of FastAPI's native OpenTelemetry telemetry (FastAPI >= 0.16x): its request
#: state while FastAPI's own server span is open; present (None) means "already observed".
_FASTAPI_KEY = "fastapi.telemetry"
_WANTED = frozenset({b"traceparent", b"tracestate", b"baggage"})
