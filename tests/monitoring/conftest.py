"""Fixtures of the energy-monitoring tests: a fresh metrics registry, captured spans, an ASGI driver."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from energy_monitoring.metrics import MetricsRegistry
from energy_monitoring.testing import InMemorySpanExporter, capture_spans, use_registry


@pytest.fixture
def registry() -> Iterator[MetricsRegistry]:
    """A private registry, installed as the default one for the test."""
    with use_registry(MetricsRegistry()) as fresh:
        yield fresh


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The session's in-memory span exporter, emptied before and after the test."""
    with capture_spans() as exporter:
        yield exporter


@dataclass
class Response:
    """What an in-process ASGI call answered."""

    status: int
    headers: dict[str, str]
    body: bytes


ASGICall = Callable[..., Awaitable[Response]]


async def call_asgi(
    app: Any, method: str = "GET", path: str = "/", headers: dict[str, str] | None = None, root_path: str = ""
) -> Response:
    """Send one HTTP request to ``app`` in-process and collect the answer."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    messages: list[dict[str, Any]] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return Response(start["status"], {k.decode(): v.decode() for k, v in start.get("headers", [])}, body)


@pytest.fixture
def asgi() -> ASGICall:
    """The in-process ASGI driver: ``await asgi(app, "GET", "/path", headers={...})``."""
    return call_asgi
