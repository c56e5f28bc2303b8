"""One trace across services: traceparent continued by a real FastAPI app and through ServiceClient.

Two FastAPI apps run on real uvicorn servers on loopback: ``gateway`` (energy_common's
``setup_middleware`` with energy_monitoring's instrumentation) calls ``users`` through
``energy_common.http_client.ServiceClient``. Spans of both land in the session's
in-memory exporter, so the test checks the whole chain: caller → gateway → users.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import httpx
import uvicorn
from energy_common.config import Settings
from energy_common.http_client import ServiceClient
from energy_common.logging import capture_logs
from energy_common.middleware import setup_middleware
from energy_monitoring.metrics import MetricsRegistry
from energy_monitoring.testing import InMemorySpanExporter, capture_spans
from energy_monitoring.tracing import current_span_ids, trace
from energy_monitoring.web import instrument_app, instrumentation_middleware
from fastapi import FastAPI
from opentelemetry.trace import SpanKind

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run ``app`` on uvicorn on a free loopback port; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(), name=f"uvicorn-{port}")
    try:
        for _ in range(200):  # bounded wait, 10 s
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


def users_app() -> FastAPI:
    """The downstream service: instrument_app (no setup_middleware), reports its span ids."""
    app = FastAPI(telemetry={"tracing": False})

    @app.get("/users/{user_id}")
    async def get_user(user_id: str) -> dict[str, Any]:
        return {"id": user_id, "span": current_span_ids()}

    instrument_app(app, registry=MetricsRegistry())
    return app


def gateway_app(users_url: str) -> FastAPI:
    """The upstream service: setup_middleware with the instrumentation, calls users via ServiceClient."""
    app = FastAPI(telemetry={"tracing": False})

    @app.get("/profile/{user_id}")
    async def profile(user_id: str) -> dict[str, Any]:
        async with ServiceClient(users_url) as client:
            user = await client.get(f"/users/{user_id}")
        return {"user": user, "span": current_span_ids()}

    setup_middleware(
        app,
        Settings(service_name="gateway"),
        instrumentation=instrumentation_middleware(registry=MetricsRegistry()),
    )
    return app


@pytest.fixture
def spans() -> Any:
    """The session's in-memory span exporter, emptied around the test."""
    with capture_spans() as exporter:
        yield exporter


async def test_traceparent_continues_through_gateway_and_service_client(spans: InMemorySpanExporter) -> None:
    """caller → gateway (FastAPI) → ServiceClient → users (FastAPI) share one trace, correctly parented."""
    async with (
        serve(users_app()) as users_url,
        serve(gateway_app(users_url)) as gateway_url,
        httpx.AsyncClient(base_url=gateway_url, timeout=10) as http,
    ):
        response = await http.get("/profile/u1", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200, response.text
    body = response.json()
    gateway_trace, gateway_span = body["span"]
    users_trace, _ = body["user"]["span"]
    assert gateway_trace == users_trace == TRACE_ID

    server = {s.name: s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER}
    gateway = server["GET /profile/{user_id}"]
    users = server["GET /users/{user_id}"]
    assert gateway.parent is not None
    assert format(gateway.parent.span_id, "016x") == CALLER_SPAN
    assert format(gateway.context.span_id, "016x") == gateway_span
    # users' server span is a child of the gateway's span (or of a client span inside it).
    assert users.parent is not None
    chain = {s.context.span_id: s for s in spans.get_finished_spans()}
    parent = chain.get(users.parent.span_id)
    while parent is not None and parent is not gateway:
        parent = chain.get(parent.parent.span_id) if parent.parent is not None else None
    assert parent is gateway
    assert (gateway.attributes or {})["http.route"] == "/profile/{user_id}"
    assert (users.attributes or {})["http.response.status_code"] == 200


async def test_request_without_traceparent_starts_one_trace_for_both(spans: InMemorySpanExporter) -> None:
    """Without traceparent the gateway starts a trace that users still joins."""
    async with (
        serve(users_app()) as users_url,
        serve(gateway_app(users_url)) as gateway_url,
        httpx.AsyncClient(base_url=gateway_url, timeout=10) as http,
    ):
        body = (await http.get("/profile/u2")).json()
    assert body["span"][0] == body["user"]["span"][0]
    assert body["span"][0] != TRACE_ID


def test_log_line_inside_trace_span_carries_its_ids(spans: InMemorySpanExporter) -> None:
    """A log line emitted inside a @trace span carries that span's trace_id and span_id."""
    import logging

    @trace("job.step")
    def step() -> tuple[str, str] | None:
        logging.getLogger("energy.tests.trace").info("inside the span")
        return current_span_ids()

    with capture_logs("INFO", logger="energy.tests.trace") as logs:
        ids = step()
        logging.getLogger("energy.tests.trace").info("outside the span")
    assert ids is not None
    inside, outside = logs
    assert (inside["trace_id"], inside["span_id"]) == ids
    assert "trace_id" not in outside
    (span,) = spans.get_finished_spans()
    assert format(span.context.trace_id, "032x") == ids[0]
