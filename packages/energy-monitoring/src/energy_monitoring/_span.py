"""``EnergySpan``: an OpenTelemetry span that also takes the seed's ``set_tag``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext, Status, StatusCode
from opentelemetry.util import types

__all__ = ["EnergySpan", "attribute_value"]

logger = logging.getLogger("energy_monitoring.tracing")

_PRIMITIVES = (str, bool, int, float)


def attribute_value(value: object) -> types.AttributeValue:
    """Coerce ``value`` into something OpenTelemetry accepts as an attribute (str fallback)."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items = list(value)
        if items and all(isinstance(item, str) for item in items):
            return [str(item) for item in items]
        if all(isinstance(item, _PRIMITIVES) and not isinstance(item, str) for item in items):
            return [item for item in items if isinstance(item, bool | int | float)]
    return str(value)


class EnergySpan(Span):
    """A span wrapper: every OpenTelemetry ``Span`` method plus ``set_tag``/``set_tags``.

    Used as a context manager it becomes the current span for the block, records an
    escaping exception with error status, and ends on exit.

    Args:
        span: The OpenTelemetry span to wrap.
        record_exception: Record an exception escaping the ``with`` block as an event.
        set_status_on_exception: Set error status when an exception escapes the block.
    """

    __slots__ = ("_record_exception", "_set_status", "_token", "span")

    def __init__(self, span: Span, *, record_exception: bool = True, set_status_on_exception: bool = True) -> None:
        self.span = span
        self._record_exception = record_exception
        self._set_status = set_status_on_exception
        self._token: object | None = None

    def __repr__(self) -> str:
        return f"EnergySpan({self.span!r})"

    def set_tag(self, key: str, value: object) -> None:
        """Set an attribute, as the seed's API did; non-primitive values are stored as strings."""
        try:
            self.span.set_attribute(str(key), attribute_value(value))
        except Exception:  # telemetry never raises into business code
            logger.debug("set_tag(%r) failed", key, exc_info=True)

    def set_tags(self, tags: Mapping[str, object]) -> None:
        """Set several attributes at once (see :meth:`set_tag`)."""
        for key, value in tags.items():
            self.set_tag(key, value)

    # Span API, delegated.
    def end(self, end_time: int | None = None) -> None:
        """End the span."""
        self.span.end(end_time)

    def get_span_context(self) -> SpanContext:
        """Return the span's context (trace id, span id)."""
        return self.span.get_span_context()

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        """Set several attributes."""
        self.span.set_attributes(attributes)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        """Set one attribute."""
        self.span.set_attribute(key, value)

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        """Add an event."""
        self.span.add_event(name, attributes, timestamp)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        """Add a link to another span."""
        self.span.add_link(context, attributes)

    def update_name(self, name: str) -> None:
        """Rename the span."""
        self.span.update_name(name)

    def is_recording(self) -> bool:
        """Tell whether the span records (sampled and not ended)."""
        return self.span.is_recording()

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the span status."""
        self.span.set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """Record an exception as an event."""
        self.span.record_exception(exception, attributes, timestamp, escaped)

    def __enter__(self) -> EnergySpan:
        try:
            self._token = otel_context.attach(trace.set_span_in_context(self.span))
        except Exception:  # telemetry never raises into business code
            logger.debug("Could not activate span", exc_info=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is not None and self.span.is_recording():
                if self._record_exception:
                    self.span.record_exception(exc, escaped=True)
                if self._set_status:
                    self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            self.span.end()
        except Exception:  # telemetry never raises into business code
            logger.debug("Could not end span", exc_info=True)
        finally:
            token: Any = self._token
            self._token = None
            if token is not None:
                otel_context.detach(token)
