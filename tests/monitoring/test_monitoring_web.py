"""Tests for energy_monitoring.web: middleware list, instrument_app, the /metrics route."""

from __future__ import annotations

from typing import Any

from energy_monitoring.metrics import MetricsApp, MetricsRegistry, metrics_app
from energy_monitoring.middleware import MetricsMiddleware, TracingMiddleware
from energy_monitoring.testing import InMemorySpanExporter
from energy_monitoring.web import add_metrics_route, instrument_app, instrumentation_middleware
from fastapi import FastAPI
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families


def test_instrumentation_middleware_is_tracing_then_metrics() -> None:
    """The list for setup_middleware holds tracing (outermost) then metrics, with their options."""
    reg = MetricsRegistry()
    stack = instrumentation_middleware(registry=reg, exclude_paths=["/metrics"])
    assert [m.cls for m in stack] == [TracingMiddleware, MetricsMiddleware]
    assert stack[1].kwargs == {"registry": reg, "exclude_paths": ("/metrics",)}
    assert [m.cls for m in instrumentation_middleware(tracing=False)] == [MetricsMiddleware]


def make_app(reg: MetricsRegistry, **telemetry: bool) -> FastAPI:
    """A FastAPI app with one templated route, instrumented, and /metrics."""
    app = FastAPI(telemetry=telemetry or None)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    instrument_app(app, registry=reg, exclude_paths=["/metrics"])
    add_metrics_route(app, registry=reg)
    return app


async def test_instrumented_app_serves_its_metrics(asgi: Any, spans: InMemorySpanExporter) -> None:
    """instrument_app records requests; add_metrics_route serves a parseable scrape, hidden from OpenAPI."""
    reg = MetricsRegistry("shop")
    app = make_app(reg, tracing=False)
    for item_id in (1, 2):
        assert (await asgi(app, "GET", f"/items/{item_id}")).status == 200
    response = await asgi(app, "GET", "/metrics")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.body.decode())}
    (sample,) = [s for s in families["shop_http_requests"].samples if s.name == "shop_http_requests_total"]
    assert sample.labels == {"method": "GET", "route": "/items/{item_id}", "status": "2xx"}
    assert sample.value == 2
    assert "/metrics" not in app.openapi()["paths"]
    (span,) = spans.get_finished_spans()[-1:]
    assert span.name == "GET /items/{item_id}"
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "energy_monitoring.http"


async def test_fastapi_native_server_span_is_not_duplicated(asgi: Any, spans: InMemorySpanExporter) -> None:
    """Inside a FastAPI app with native telemetry on, exactly one SERVER span is recorded per request."""
    app = make_app(MetricsRegistry())
    await asgi(
        app, "GET", "/items/3", headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    )
    server = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert len(server) == 1
    assert format(server[0].context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"


async def test_metrics_app_methods(asgi: Any) -> None:
    """The /metrics app answers GET and HEAD, refuses other methods with 405 and Allow."""
    reg = MetricsRegistry()
    reg.increment_counter("pings")
    app = metrics_app(reg)
    assert isinstance(app, MetricsApp)
    got = await asgi(app, "GET", "/")
    assert b"pings_total 1.0" in got.body
    head = await asgi(app, "HEAD", "/")
    assert head.status == 200
    assert head.body == b""
    assert int(head.headers["content-length"]) == len(got.body)
    post = await asgi(app, "POST", "/")
    assert post.status == 405
    assert post.headers["allow"] == "GET, HEAD"


async def test_metrics_app_negotiates_openmetrics(asgi: Any) -> None:
    """A scraper asking for OpenMetrics gets it."""
    reg = MetricsRegistry()
    reg.increment_counter("pings")
    got = await asgi(metrics_app(reg), "GET", "/", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert got.headers["content-type"].startswith("application/openmetrics-text")
    assert got.body.rstrip().endswith(b"# EOF")


async def test_failing_collection_answers_500_without_details(asgi: Any) -> None:
    """A collector that raises gives a 500 with a short body (no traceback) instead of crashing."""

    class Broken:
        broken = False

        def collect(self) -> Any:
            if self.broken:
                raise RuntimeError("secret detail")
            return []

    reg = MetricsRegistry()
    collector = Broken()
    reg.collector_registry.register(collector)  # type: ignore[arg-type]
    collector.broken = True
    got = await asgi(metrics_app(reg), "GET", "/")
    assert got.status == 500
    assert b"secret" not in got.body
