"""``get_tracer`` and ``@trace`` on top of OpenTelemetry's global tracer provider."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, cast, overload

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Link, ProxyTracer, SpanKind, Tracer
from opentelemetry.util import types

from energy_monitoring._span import EnergySpan

__all__ = ["EnergyTracer", "get_tracer", "trace"]

logger = logging.getLogger("energy_monitoring.tracing")

P = ParamSpec("P")
R = TypeVar("R")


class _LazyTracer:
    """Resolves the real tracer once a provider is installed (no proxy hop afterwards)."""

    __slots__ = ("_provider", "_tracer", "name", "version")

    def __init__(self, name: str, version: str | None, provider: otel_trace.TracerProvider | None) -> None:
        self.name = name
        self.version = version
        self._provider = provider
        self._tracer: Tracer | None = None

    def get(self) -> Tracer:
        tracer = self._tracer
        if tracer is None:
            tracer = otel_trace.get_tracer(self.name, self.version, tracer_provider=self._provider)
            if not isinstance(tracer, ProxyTracer):
                self._tracer = tracer
        return tracer


class EnergyTracer(Tracer):
    """An OpenTelemetry tracer whose spans are :class:`EnergySpan` (``set_tag`` works).

    ``start_span`` returns a span that, used as a context manager, is current for the
    block and ends on exit (unlike a bare OpenTelemetry ``start_span``, which does not
    activate it). ``start_as_current_span`` behaves as in OpenTelemetry.

    Args:
        name: The instrumentation scope name (the service or module).
        version: The instrumentation scope version.
        tracer_provider: A provider to use instead of the global one.
    """

    def __init__(
        self, name: str, version: str | None = None, *, tracer_provider: otel_trace.TracerProvider | None = None
    ) -> None:
        self._lazy = _LazyTracer(name, version, tracer_provider)

    @property
    def name(self) -> str:
        """The instrumentation scope name."""
        return self._lazy.name

    def start_span(  # noqa: PLR0917 - the signature of OpenTelemetry's Tracer.start_span
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> EnergySpan:
        """Start a span; use it as a context manager (it is current inside the block).

        Example:
            >>> tracer = get_tracer("my-service")
            >>> with tracer.start_span("database_query") as span:
            ...     span.set_tag("query", "SELECT 1")
        """
        try:
            span = self._lazy.get().start_span(name, context, kind, attributes, links, start_time)
        except Exception:  # telemetry never raises into business code
            logger.warning("Could not start span %r", name, exc_info=True)
            span = INVALID_SPAN
        return EnergySpan(span, record_exception=record_exception, set_status_on_exception=set_status_on_exception)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # noqa: PLR0917 - OpenTelemetry's signature; its return type is a private class
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[EnergySpan]:
        """Start a span, make it current for the block and end it on exit (OpenTelemetry semantics)."""
        with self._lazy.get().start_as_current_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
            end_on_exit,
        ) as span:
            yield EnergySpan(span)


def get_tracer(
    name: str, version: str | None = None, *, tracer_provider: otel_trace.TracerProvider | None = None
) -> EnergyTracer:
    """Return a tracer through OpenTelemetry's global provider (a no-op until one is installed).

    Example:
        >>> tracer = get_tracer("my-service")
        >>> with tracer.start_span("database_query") as span:
        ...     span.set_tag("query", "SELECT * FROM users")
    """
    return EnergyTracer(name, version, tracer_provider=tracer_provider)


def trace(
    name: str | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: types.Attributes = None,
    tracer_name: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a sync or async function so that each call runs in a span.

    An exception escaping the function is recorded on the span, the span's status is
    set to error, and the exception propagates unchanged.

    Args:
        name: Span name; the function's qualified name if None.
        kind: Span kind.
        attributes: Attributes set on every span.
        tracer_name: Instrumentation scope; the function's module if None.

    Example:
        >>> @trace("user_service.get_user")
        ... async def get_user(user_id: str) -> None:
        ...     pass
    """

    @overload
    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def decorate(func: Callable[P, R]) -> Callable[P, R]: ...
    def decorate(func: Callable[P, Any]) -> Callable[P, Any]:
        span_name = name or func.__qualname__
        lazy = _LazyTracer(tracer_name or func.__module__, None, None)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                with lazy.get().start_as_current_span(span_name, kind=kind, attributes=attributes):
                    return await func(*args, **kwargs)

            return cast("Callable[P, Any]", async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            with lazy.get().start_as_current_span(span_name, kind=kind, attributes=attributes):
                return func(*args, **kwargs)

        return wrapper

    return decorate
