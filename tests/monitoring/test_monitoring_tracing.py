"""Tests for energy_monitoring.tracing: @trace, get_tracer spans, setup_tracing and its provider."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap

import pytest
from energy_common.exceptions import EnergyError
from energy_monitoring._correlation import CorrelationIdSpanProcessor
from energy_monitoring.testing import InMemorySpanExporter
from energy_monitoring.tracing import (
    EnergySpan,
    TracingError,
    build_tracer_provider,
    current_span_ids,
    get_tracer,
    setup_tracing,
    trace,
)
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode


@trace("work.sync")
def sync_work(x: int) -> int:
    """A traced sync function."""
    return x * 2


@trace("work.async")
async def async_work(x: int) -> int:
    """A traced async function."""
    await asyncio.sleep(0)
    return x * 3


@trace()
def failing() -> None:
    """A traced function that raises."""
    raise ValueError("bad input")


@trace("work.async_failing", kind=SpanKind.CONSUMER, attributes={"job": "x"})
async def async_failing() -> None:
    """A traced async function that raises."""
    raise KeyError("missing")


def test_trace_decorates_sync_function(spans: InMemorySpanExporter) -> None:
    """A sync call returns its value and records one span with OK/unset status."""
    assert sync_work(2) == 4
    (span,) = spans.get_finished_spans()
    assert span.name == "work.sync"
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == __name__


async def test_trace_decorates_async_function(spans: InMemorySpanExporter) -> None:
    """An async call is awaited inside its span."""
    assert await async_work(2) == 6
    assert [s.name for s in spans.get_finished_spans()] == ["work.async"]


@pytest.mark.parametrize(
    ("call", "name", "exc_type"),
    [
        (failing, "failing", ValueError),
        (lambda: asyncio.run(async_failing()), "work.async_failing", KeyError),
    ],
    ids=["sync", "async"],
)
def test_trace_records_exceptions_and_error_status(
    spans: InMemorySpanExporter, call: object, name: str, exc_type: type[Exception]
) -> None:
    """A raising function's exception propagates, is recorded and sets error status."""
    with pytest.raises(exc_type):
        call()  # type: ignore[operator]
    (span,) = spans.get_finished_spans()
    assert span.name == name
    assert span.status.status_code is StatusCode.ERROR
    (event,) = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == exc_type.__name__


def test_trace_keeps_metadata_and_options(spans: InMemorySpanExporter) -> None:
    """The decorator keeps the function's name and applies kind and attributes."""
    assert async_failing.__name__ == "async_failing"
    with pytest.raises(KeyError):
        asyncio.run(async_failing())
    (span,) = spans.get_finished_spans()
    assert span.kind is SpanKind.CONSUMER
    assert (span.attributes or {})["job"] == "x"


def test_seed_start_span_takes_set_tag_and_is_current(spans: InMemorySpanExporter) -> None:
    """The seed's start_span/set_tag example works; the span is current and parents nested spans."""
    tracer = get_tracer("my-service")
    with tracer.start_span("database_query") as span:
        assert isinstance(span, EnergySpan)
        span.set_tag("query", "SELECT * FROM users")
        span.set_tag("rows", 3)
        span.set_tags({"ids": [1, 2], "owner": {"id": 1}, "names": ["a", "b"]})
        span.set_attribute("db.system", "postgresql")
        ids = current_span_ids()
        assert sync_work(1) == 2
    assert current_span_ids() is None
    by_name = {s.name: s for s in spans.get_finished_spans()}
    outer = by_name["database_query"]
    assert ids == (format(outer.context.trace_id, "032x"), format(outer.context.span_id, "016x"))
    assert by_name["work.sync"].parent is not None
    assert by_name["work.sync"].parent.span_id == outer.context.span_id
    assert dict(outer.attributes or {}) == {
        "query": "SELECT * FROM users",
        "rows": 3,
        "ids": (1, 2),
        "owner": "{'id': 1}",
        "names": ("a", "b"),
        "db.system": "postgresql",
    }


def test_start_span_records_escaping_exception(spans: InMemorySpanExporter) -> None:
    """An exception leaving a start_span block is recorded with error status and re-raised."""
    tracer = get_tracer("my-service")
    with pytest.raises(RuntimeError), tracer.start_span("step"):
        raise RuntimeError("boom")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RuntimeError: boom"


def test_start_as_current_span_has_opentelemetry_semantics(spans: InMemorySpanExporter) -> None:
    """start_as_current_span yields an EnergySpan that is current and ends on exit."""
    tracer = get_tracer("my-service", "1.0")
    with tracer.start_as_current_span("outer", kind=SpanKind.PRODUCER) as span:
        span.set_tag("k", "v")
        assert otel_trace.get_current_span().get_span_context() == span.get_span_context()
        assert span.is_recording()
    (finished,) = spans.get_finished_spans()
    assert finished.kind is SpanKind.PRODUCER
    assert tracer.name == "my-service"


def test_build_tracer_provider_sets_resource_sampler_and_batch_processor() -> None:
    """The SDK provider has the service resource, a parent-based ratio sampler and a batch processor."""
    provider = build_tracer_provider(
        "auth-service", exporter="console", sample_ratio=0.25, service_version="1.2.3", environment="staging"
    )
    try:
        attrs = provider.resource.attributes
        assert attrs["service.name"] == "auth-service"
        assert attrs["service.version"] == "1.2.3"
        assert attrs["deployment.environment"] == "staging"
        assert "0.25" in provider.sampler.get_description()
        processors = provider._active_span_processor._span_processors
        assert [type(p) for p in processors] == [CorrelationIdSpanProcessor, BatchSpanProcessor]
    finally:
        provider.shutdown()


def test_build_tracer_provider_otlp_and_none() -> None:
    """The otlp exporter is available with the extra; 'none' adds no export processor (only the correlation one)."""
    for exporter, count in (("otlp", 2), ("none", 1)):
        provider = build_tracer_provider("svc", exporter=exporter, endpoint="http://127.0.0.1:9/v1/traces")  # type: ignore[arg-type]
        try:
            assert len(provider._active_span_processor._span_processors) == count
        finally:
            provider.shutdown()


@pytest.mark.parametrize(
    "kwargs",
    [{"exporter": "zipkin"}, {"sample_ratio": 1.5}, {"sample_ratio": -0.1}, {"sample_ratio": True}],
)
def test_invalid_tracing_options_raise(kwargs: dict[str, object]) -> None:
    """Unknown exporters and sample ratios outside 0-1 raise TracingError (an EnergyError)."""
    with pytest.raises(TracingError) as info:
        build_tracer_provider("svc", **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, EnergyError)
    assert info.value.error_code == "TRACING_ERROR"


def test_empty_service_name_raises() -> None:
    """A service name is required."""
    with pytest.raises(TracingError):
        build_tracer_provider("  ")


def test_setup_tracing_keeps_an_installed_provider(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """With a provider already installed, setup_tracing returns it unchanged and warns."""
    installed = otel_trace.get_tracer_provider()
    assert isinstance(installed, TracerProvider)
    with caplog.at_level(logging.WARNING, logger="energy_monitoring.tracing"):
        assert setup_tracing("svc", exporter="none") is installed
    assert "already" in caplog.text
    assert sync_work(1) == 2
    assert len(spans.get_finished_spans()) == 1


SUBPROCESS = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace as otel_trace
    from energy_monitoring.tracing import get_tracer, setup_tracing, shutdown_tracing, trace

    @trace("before.setup")
    def early():
        return otel_trace.get_current_span().get_span_context().is_valid

    noop_valid = early()  # no SDK installed yet: no-op span, nothing exported
    with get_tracer("svc").start_span("noop") as span:
        span.set_tag("k", "v")
    first = setup_tracing("child-service", exporter="console", service_version="9.9")
    second = setup_tracing("child-service", exporter="console", service_version="9.9")
    third = setup_tracing("other", exporter="none")
    assert first is second is third is otel_trace.get_tracer_provider()
    with get_tracer("svc").start_span("after.setup") as span:
        span.set_tag("k", "v")
    early()
    shutdown_tracing()
    shutdown_tracing()
    sys.stderr.write(json.dumps({"noop_valid": noop_valid}))
    """
)


def test_setup_tracing_installs_once_and_shutdown_flushes() -> None:
    """In a fresh process: no-op before setup, idempotent setup, and shutdown flushes batched spans."""
    result = subprocess.run([sys.executable, "-c", SUBPROCESS], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1]) == {"noop_valid": False}
    exported = result.stdout
    assert '"name": "after.setup"' in exported
    assert '"name": "before.setup"' in exported
    assert '"name": "noop"' not in exported
    assert '"service.name": "child-service"' in exported
    assert '"service.version": "9.9"' in exported


LIFESPAN = textwrap.dedent(
    """
    import asyncio
    from energy_monitoring.tracing import get_tracer, tracing_lifespan

    async def main():
        async with tracing_lifespan("lifespan-service", exporter="console") as provider:
            with get_tracer("svc").start_span("inside.lifespan"):
                pass
        with get_tracer("svc").start_span("after.shutdown"):
            pass

    asyncio.run(main())
    """
)


def test_tracing_lifespan_flushes_on_exit() -> None:
    """tracing_lifespan installs the provider for the block and flushes the batch on exit."""
    result = subprocess.run([sys.executable, "-c", LIFESPAN], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert '"name": "inside.lifespan"' in result.stdout
    assert '"name": "after.shutdown"' not in result.stdout
    assert '"service.name": "lifespan-service"' in result.stdout


def test_every_span_carries_the_current_correlation_id() -> None:
    """A provider built by build_tracer_provider stamps the correlation id current at a span's start, and none without one."""
    from energy_common.context import correlation_scope
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = build_tracer_provider("svc", exporter="none", span_exporter=exporter)
    try:
        tracer = provider.get_tracer("t")
        with correlation_scope("req-span-1"):
            tracer.start_span("with").end()
        tracer.start_span("without").end()
        provider.force_flush()
        spans = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}
        assert spans["with"]["correlation_id"] == "req-span-1"
        assert "correlation_id" not in spans["without"]
    finally:
        provider.shutdown()
