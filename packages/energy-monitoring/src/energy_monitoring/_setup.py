"""``setup_tracing``: install the OpenTelemetry SDK provider once, flush it on shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from energy_monitoring._clients import ClientLibrary, _requested, instrument_clients
from energy_monitoring._correlation import CorrelationIdSpanProcessor
from energy_monitoring._errors import TracingError

__all__ = ["ExporterName", "build_tracer_provider", "setup_tracing", "shutdown_tracing", "tracing_lifespan"]

logger = logging.getLogger("energy_monitoring.tracing")

ExporterName = Literal["otlp", "console", "none"]
_EXPORTERS = ("otlp", "console", "none")


@dataclass
class _Installed:
    provider: TracerProvider
    config: tuple[object, ...]
    shut_down: bool = False


_installed: _Installed | None = None
_lock = threading.Lock()


def _make_exporter(
    exporter: ExporterName, endpoint: str | None, headers: Mapping[str, str] | None
) -> SpanExporter | None:
    if exporter == "none":
        return None
    if exporter == "console":
        return ConsoleSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
    except ImportError as exc:
        from energy_common._extras import missing_extra  # noqa: PLC0415

        raise missing_extra("energy-monitoring", "otlp", exc) from exc
    return OTLPSpanExporter(endpoint=endpoint, headers=dict(headers) if headers else None)


def build_tracer_provider(
    service_name: str,
    *,
    exporter: ExporterName = "otlp",
    sample_ratio: float = 1.0,
    service_version: str | None = None,
    environment: str | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    span_exporter: SpanExporter | None = None,
) -> TracerProvider:
    """Build (without installing) an SDK provider: resource, parent-based ratio sampler, batch export.

    Every span gets the current correlation id as its ``correlation_id`` attribute
    (a span processor reads it from ``energy_common.context`` as each span starts).

    Args:
        service_name: ``service.name`` of the resource.
        exporter: ``"otlp"`` (OTLP/HTTP; extra ``otlp``; endpoint from ``endpoint`` or the
            ``OTEL_EXPORTER_OTLP_*`` variables), ``"console"`` (stdout) or ``"none"`` (spans
            are created, so ids reach the logs, but not exported).
        sample_ratio: Share of new traces sampled (0.0-1.0); a remote parent's decision wins.
        service_version: ``service.version`` (``"unknown"`` if None).
        environment: ``deployment.environment``; ``$DEPLOYMENT_ENVIRONMENT``, ``$ENVIRONMENT``
            or ``"development"`` if None.
        endpoint: OTLP endpoint URL (``http://collector:4318/v1/traces``).
        headers: Extra OTLP request headers (e.g. an API key).
        span_exporter: Export to this exporter instead (batch processor as well).

    Raises:
        TracingError: unknown exporter, sample ratio outside 0-1 or empty service name.
        ImportError: ``exporter="otlp"`` without the ``otlp`` extra.
    """
    if not isinstance(service_name, str) or not service_name.strip():
        raise TracingError("setup_tracing needs a non-empty service name, e.g. 'auth-service'.")
    if exporter not in _EXPORTERS:
        raise TracingError(
            f"Unknown trace exporter {exporter!r}; use one of {', '.join(_EXPORTERS)}.", {"exporter": str(exporter)}
        )
    if isinstance(sample_ratio, bool) or not isinstance(sample_ratio, int | float) or not 0.0 <= sample_ratio <= 1.0:
        raise TracingError(
            f"sample_ratio must be a number from 0.0 to 1.0, got {sample_ratio!r}.", {"sample_ratio": str(sample_ratio)}
        )
    env = environment or os.environ.get("DEPLOYMENT_ENVIRONMENT") or os.environ.get("ENVIRONMENT") or "development"
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.version": service_version or "unknown",
            "deployment.environment": env,
            "deployment.environment.name": env,
        }
    )
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(float(sample_ratio))))
    provider.add_span_processor(CorrelationIdSpanProcessor())  # every span names its request
    chosen = span_exporter if span_exporter is not None else _make_exporter(exporter, endpoint, headers)
    if chosen is not None:
        provider.add_span_processor(BatchSpanProcessor(chosen))
    return provider


def setup_tracing(
    service_name: str,
    *,
    exporter: ExporterName = "otlp",
    sample_ratio: float = 1.0,
    service_version: str | None = None,
    environment: str | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    instrument: bool | Collection[ClientLibrary] = True,
) -> otel_trace.TracerProvider:
    """Install the SDK tracer provider as OpenTelemetry's global one (idempotent).

    The first call builds the provider (see :func:`build_tracer_provider`) and installs it;
    later calls return it unchanged (with a warning if their options differ).
    With ``instrument=True`` (the default) it also switches on client spans for SQLAlchemy,
    Redis and httpx where their OpenTelemetry contrib instrumentations are installed (extra
    ``instrument``; see :func:`energy_monitoring.tracing.instrument_clients`); pass a list to
    choose, or False for none.
    OpenTelemetry allows one global provider per process: if the application (or another
    library) installed one before, it is kept and returned, nothing is replaced, and a
    warning is logged; ``get_tracer`` and ``@trace`` then use that provider.

    Example:
        >>> provider = setup_tracing("auth-service", exporter="none")  # doctest: +SKIP

    Raises:
        TracingError: invalid options (see :func:`build_tracer_provider`).
        ImportError: ``exporter="otlp"`` without the ``otlp`` extra.
    """
    global _installed  # noqa: PLW0603 - one global provider per process, as in OpenTelemetry
    config = (service_name, exporter, sample_ratio, service_version, environment, endpoint)
    with _lock:
        if _installed is not None:
            if _installed.config != config:
                logger.warning(
                    "setup_tracing was already called; keeping the first configuration %r", _installed.config
                )
            return _installed.provider
        current = otel_trace.get_tracer_provider()
        if not isinstance(current, otel_trace.ProxyTracerProvider):
            logger.warning(
                "A tracer provider (%s) is already installed; setup_tracing keeps it and does not export on its own.",
                type(current).__name__,
            )
            return current
        provider = build_tracer_provider(
            service_name,
            exporter=exporter,
            sample_ratio=sample_ratio,
            service_version=service_version,
            environment=environment,
            endpoint=endpoint,
            headers=headers,
        )
        otel_trace.set_tracer_provider(provider)
        _installed = _Installed(provider, config)
    instrument_clients(_requested(instrument))
    return provider


def shutdown_tracing(timeout_millis: int = 30_000) -> None:
    """Flush pending spans and shut down the provider installed by :func:`setup_tracing`.

    Never raises (failures are logged). A provider installed by the application is left
    alone. OpenTelemetry cannot replace the global provider, so tracing stays off (spans
    are dropped) for the rest of the process after this call.
    """
    with _lock:
        installed = _installed
        if installed is None or installed.shut_down:
            return
        installed.shut_down = True
    try:
        if not installed.provider.force_flush(timeout_millis):
            logger.warning("Not every span was exported within %d ms at shutdown", timeout_millis)
        installed.provider.shutdown()
    except Exception:
        logger.exception("Tracing shutdown failed")


@asynccontextmanager
async def tracing_lifespan(
    service_name: str,
    *,
    exporter: ExporterName = "otlp",
    sample_ratio: float = 1.0,
    service_version: str | None = None,
    environment: str | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    flush_timeout_millis: int = 30_000,
    instrument: bool | Collection[ClientLibrary] = True,
) -> AsyncIterator[otel_trace.TracerProvider]:
    """Set tracing up for a block (e.g. a FastAPI lifespan) and flush it on exit.

    Wraps :func:`setup_tracing` and :func:`shutdown_tracing`; the flush runs in a worker
    thread so the event loop is not blocked.

    Example:
        >>> async def lifespan(app):  # doctest: +SKIP
        ...     async with tracing_lifespan("auth-service", exporter="otlp"):
        ...         yield

    Raises:
        TracingError: invalid options (see :func:`build_tracer_provider`).
        ImportError: ``exporter="otlp"`` without the ``otlp`` extra.
    """
    provider = setup_tracing(
        service_name,
        exporter=exporter,
        sample_ratio=sample_ratio,
        service_version=service_version,
        environment=environment,
        endpoint=endpoint,
        headers=headers,
        instrument=instrument,
    )
    try:
        yield provider
    finally:
        await asyncio.to_thread(shutdown_tracing, flush_timeout_millis)
