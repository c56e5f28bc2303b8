"""Tests for the pure ASGI MetricsMiddleware and TracingMiddleware on a real FastAPI app."""

from __future__ import annotations

from typing import Any

import pytest
from energy_monitoring.metrics import MetricsRegistry
from energy_monitoring.middleware import UNMATCHED_ROUTE, MetricsMiddleware, TracingMiddleware
from energy_monitoring.testing import InMemorySpanExporter
from fastapi import APIRouter, FastAPI, HTTPException
from opentelemetry.trace import SpanKind, StatusCode

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def make_app() -> FastAPI:
    """A FastAPI app with a templated route, a router prefix, a mount and failing routes."""
    app = FastAPI()
    router = APIRouter(prefix="/api")

    @router.get("/users/{user_id}")
    async def get_user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(status_code=404)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    meters = APIRouter(prefix="/meters")

    @meters.get("/{meter_id}/readings")
    async def readings(meter_id: str) -> dict[str, str]:
        return {"id": meter_id}

    sub = FastAPI()

    @sub.get("/devices/{device_id}")
    async def device(device_id: str) -> dict[str, str]:
        return {"id": device_id}

    app.include_router(router)
    app.include_router(meters, prefix="/api/v1")
    app.mount("/sub", sub)
    return app


def count(reg: MetricsRegistry, method: str, route: str, status: str) -> float | None:
    """Return http_requests_total for one label set (None if absent)."""
    labels = {"method": method, "route": route, "status": status}
    return reg.collector_registry.get_sample_value("http_requests_total", labels)


@pytest.fixture
def reg() -> MetricsRegistry:
    """A private registry for one app."""
    return MetricsRegistry()


async def test_metrics_use_route_templates_and_status_classes(reg: MetricsRegistry, asgi: Any) -> None:
    """Requests are counted by method, route template (never the raw path) and status class."""
    app = MetricsMiddleware(make_app(), registry=reg)
    for user in (1, 2, 3):
        assert (await asgi(app, "GET", f"/api/users/{user}")).status == 200
    assert (await asgi(app, "GET", "/missing")).status == 404
    assert (await asgi(app, "GET", "/no/such/path")).status == 404
    assert (await asgi(app, "GET", "/sub/devices/d-9")).status == 200
    assert (await asgi(app, "GET", "/api/v1/meters/m-1/readings")).status == 200
    assert count(reg, "GET", "/api/users/{user_id}", "2xx") == 3
    assert count(reg, "GET", "/api/v1/meters/{meter_id}/readings", "2xx") == 1  # include_router prefix kept
    assert count(reg, "GET", "/missing", "4xx") == 1
    assert count(reg, "GET", UNMATCHED_ROUTE, "4xx") == 1
    assert count(reg, "GET", "/sub/devices/{device_id}", "2xx") == 1
    raw = [s for m in reg.collector_registry.collect() for s in m.samples if "/api/users/1" in str(s.labels)]
    assert raw == []
    duration = reg.collector_registry.get_sample_value(
        "http_request_duration_seconds_count", {"method": "GET", "route": "/api/users/{user_id}", "status": "2xx"}
    )
    assert duration == 3


async def test_exception_counts_as_5xx_and_propagates(reg: MetricsRegistry, asgi: Any) -> None:
    """An exception escaping the app is counted as 5xx and re-raised; in-flight goes back to 0."""
    app = MetricsMiddleware(make_app(), registry=reg)
    with pytest.raises(RuntimeError):
        await asgi(app, "GET", "/crash")
    assert count(reg, "GET", "/crash", "5xx") == 1
    assert reg.collector_registry.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 0


async def test_in_flight_gauge_counts_running_requests(reg: MetricsRegistry, asgi: Any) -> None:
    """While a request runs, the in-progress gauge of its method is 1."""
    seen: list[float | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(reg.collector_registry.get_sample_value("http_requests_in_progress", {"method": "POST"}))
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await asgi(MetricsMiddleware(app, registry=reg), "POST", "/x")
    assert seen == [1.0]
    assert count(reg, "POST", UNMATCHED_ROUTE, "2xx") == 1


async def test_odd_methods_and_excluded_paths(reg: MetricsRegistry, asgi: Any) -> None:
    """Non-standard methods are bucketed as _OTHER; excluded paths are not recorded."""
    app = MetricsMiddleware(make_app(), registry=reg, exclude_paths=["/missing"])
    await asgi(app, "BREW", "/coffee")
    await asgi(app, "GET", "/missing")
    assert count(reg, "_OTHER", UNMATCHED_ROUTE, "4xx") == 1
    assert count(reg, "GET", "/missing", "4xx") is None


@pytest.mark.parametrize("middleware", [MetricsMiddleware, TracingMiddleware])
async def test_non_http_scopes_pass_through(middleware: Any, reg: MetricsRegistry) -> None:
    """Lifespan (and websocket) scopes reach the app untouched."""
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    kwargs = {"registry": reg} if middleware is MetricsMiddleware else {}
    await middleware(app, **kwargs)({"type": "lifespan"}, None, None)
    assert seen == ["lifespan"]


async def test_tracing_continues_incoming_traceparent(spans: InMemorySpanExporter, asgi: Any) -> None:
    """A request with traceparent gets a SERVER span in that trace, named by route, with HTTP semconv."""
    app = TracingMiddleware(make_app())
    response = await asgi(app, "GET", "/api/users/7", headers={"traceparent": TRACEPARENT})
    assert response.status == 200
    (span,) = spans.get_finished_spans()
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET /api/users/{user_id}"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.path": "/api/users/7",
        "url.scheme": "http",
        "http.route": "/api/users/{user_id}",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET
    # The response names the server span: the client learns where its request went.
    assert response.headers["traceresponse"] == f"00-{TRACE_ID}-{span.context.span_id:016x}-01"


async def test_traceresponse_can_be_left_out_and_needs_a_valid_span(spans: InMemorySpanExporter, asgi: Any) -> None:
    """trace_response=False sends no traceresponse; a request without traceparent gets its new trace's."""
    quiet = await asgi(TracingMiddleware(make_app(), trace_response=False), "GET", "/api/users/7")
    assert "traceresponse" not in quiet.headers
    loud = await asgi(TracingMiddleware(make_app()), "GET", "/api/users/7")
    _, first = spans.get_finished_spans()
    version, trace_id, span_id, flags = loud.headers["traceresponse"].split("-")
    assert version == "00"
    assert int(flags, 16) & 1  # sampled (the SDK may set the W3C "random trace id" flag too)
    assert (int(trace_id, 16), int(span_id, 16)) == (first.context.trace_id, first.context.span_id)


async def test_tracing_without_traceparent_starts_a_new_trace(spans: InMemorySpanExporter, asgi: Any) -> None:
    """Without traceparent the server span is a root; a bad traceparent is ignored."""
    app = TracingMiddleware(make_app())
    await asgi(app, "GET", "/no/such/path", headers={"traceparent": "00-zz-yy-01"})
    (span,) = spans.get_finished_spans()
    assert span.parent is None
    assert span.name == "GET"
    assert "http.route" not in (span.attributes or {})
    assert (span.attributes or {})["http.response.status_code"] == 404


async def test_tracing_marks_exceptions_and_5xx_as_errors(spans: InMemorySpanExporter, asgi: Any) -> None:
    """An escaping exception is recorded with error status and re-raised."""
    app = TracingMiddleware(make_app())
    with pytest.raises(RuntimeError):
        await asgi(app, "GET", "/crash")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    assert span.name == "GET /crash"


async def test_handler_spans_are_children_of_the_server_span(spans: InMemorySpanExporter, asgi: Any) -> None:
    """Spans started in a route handler are children of the request span."""
    from energy_monitoring.tracing import trace

    app = FastAPI()

    @trace("load")
    async def load() -> int:
        return 1

    @app.get("/work")
    async def work() -> dict[str, int]:
        return {"n": await load()}

    await asgi(TracingMiddleware(MetricsMiddleware(app, registry=MetricsRegistry())), "GET", "/work")
    by_name = {span.name: span for span in spans.get_finished_spans()}
    assert by_name["load"].parent is not None
    assert by_name["load"].parent.span_id == by_name["GET /work"].context.span_id
