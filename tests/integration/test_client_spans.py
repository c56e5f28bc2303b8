"""Client spans of energy-monitoring over energy-common's clients (SQLAlchemy, Redis, httpx): contrib instrumentations on, secrets kept out."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest
from energy_monitoring import TracingError
from energy_monitoring.testing import InMemorySpanExporter, capture_spans
from energy_monitoring.tracing import get_tracer, instrument_clients, instrument_engine, uninstrument_clients

SECRET = "s3cr3t-value-never-in-a-span"


@pytest.fixture
def spans() -> Any:
    """The session's in-memory span exporter, emptied around the test."""
    with capture_spans() as exporter:
        yield exporter


@pytest.fixture(autouse=True)
def _clients_off() -> Any:
    """Switch the process-wide client instrumentation off after each test, so other tests see plain clients."""
    yield
    uninstrument_clients()


def _attribute_text(exporter: InMemorySpanExporter) -> str:
    """Every attribute value of every finished span, joined, to search for leaks."""
    return " ".join(str(value) for span in exporter.get_finished_spans() for value in (span.attributes or {}).values())


def test_instrument_engine_refuses_what_is_not_an_engine() -> None:
    """instrument_engine on an object that is no SQLAlchemy engine raises instead of attaching listeners."""
    pytest.importorskip("opentelemetry.instrumentation.sqlalchemy")
    with pytest.raises(TracingError, match="Engine"):
        instrument_engine(object())


def test_engine_tracer_contract() -> None:
    """The contrib EngineTracer still takes (tracer, engine, connections_usage, commenter flags) as instrument_engine passes them."""
    sqlalchemy_instrumentation = pytest.importorskip("opentelemetry.instrumentation.sqlalchemy.engine")
    params = list(inspect.signature(sqlalchemy_instrumentation.EngineTracer.__init__).parameters)
    assert params[:7] == [
        "self",
        "tracer",
        "engine",
        "connections_usage",
        "enable_commenter",
        "commenter_options",
        "enable_attribute_commenter",
    ]


@pytest.mark.redis
async def test_redis_spans_name_the_command_but_never_keys_or_values(
    spans: InMemorySpanExporter, redis_client: Any, redis_key_prefix: str
) -> None:
    """A Redis SET records a client span 'SET' whose statement hides the key and the value."""
    pytest.importorskip("opentelemetry.instrumentation.redis")
    assert "redis" in instrument_clients(["redis"])
    await redis_client.set(f"{redis_key_prefix}token", SECRET)
    assert await redis_client.get(f"{redis_key_prefix}token") == SECRET.encode()
    redis_spans = [span for span in spans.get_finished_spans() if span.attributes and "db.system" in span.attributes]
    assert [span.name for span in redis_spans][:2] == ["SET", "GET"]
    assert redis_spans[0].attributes is not None
    assert redis_spans[0].attributes.get("db.statement") == "SET ? ?"
    assert SECRET not in _attribute_text(spans)
    assert redis_key_prefix not in _attribute_text(spans)


async def test_sqlalchemy_spans_keep_placeholders_not_parameters(spans: InMemorySpanExporter, tmp_path: Any) -> None:
    """A statement with a bound secret records its SQL with a placeholder, and instrumenting twice is a no-op."""
    pytest.importorskip("opentelemetry.instrumentation.sqlalchemy")
    pytest.importorskip("aiosqlite")
    from energy_common.database import Database
    from sqlalchemy import text

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'spans.db'}")
    try:
        assert instrument_engine(db) is True
        assert instrument_engine(db.engine) is False
        async with db.session() as session:
            result = await session.execute(text("SELECT :value AS echoed"), {"value": SECRET})
            assert result.scalar_one() == SECRET
    finally:
        await db.dispose()
    statements = [
        span.attributes.get("db.statement")
        for span in spans.get_finished_spans()
        if span.attributes and span.attributes.get("db.system") == "sqlite"
    ]
    assert statements == ["SELECT ? AS echoed"]
    assert SECRET not in _attribute_text(spans)


@pytest.fixture
async def http_server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A loopback HTTP/1.1 server that answers 200 'ok' and keeps every request head it saw."""
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, heads


async def test_httpx_spans_redact_credentials_and_query_values(
    spans: InMemorySpanExporter, http_server: tuple[int, list[bytes]]
) -> None:
    """An httpx call records a CLIENT span without user info or query values, and sends that span as the parent."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("opentelemetry.instrumentation.httpx")
    port, heads = http_server
    assert "httpx" in instrument_clients(["httpx"])
    with get_tracer("test").start_span("outer"):
        pass
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://user:{SECRET}@127.0.0.1:{port}/v1/meters?token={SECRET}&page=2")
    assert response.status_code == 200
    client_spans = [span for span in spans.get_finished_spans() if span.kind.name == "CLIENT"]
    assert len(client_spans) == 1
    span = client_spans[0]
    assert span.attributes is not None
    urls = {span.attributes.get(name) for name in ("url.full", "http.url")} - {None}
    assert urls == {f"http://127.0.0.1:{port}/v1/meters?token=REDACTED&page=REDACTED"}
    assert SECRET not in _attribute_text(spans)
    traceparent = next(line for line in heads[0].split(b"\r\n") if line.lower().startswith(b"traceparent:"))
    assert f"{span.context.span_id:016x}".encode() in traceparent


def test_uninstrument_clients_switches_spans_off(spans: InMemorySpanExporter) -> None:
    """After uninstrument_clients, the set of instrumented libraries is empty again and can be switched on anew."""
    pytest.importorskip("opentelemetry.instrumentation.httpx")
    pytest.importorskip("httpx")
    assert "httpx" in instrument_clients(["httpx"])
    uninstrument_clients()
    assert instrument_clients([]) == frozenset()
    assert "httpx" in instrument_clients(["httpx"])
