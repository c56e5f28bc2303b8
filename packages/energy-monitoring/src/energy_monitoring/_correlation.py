"""Stamp the current correlation id on every span as it starts (``correlation_id`` attribute).

Logs carry the correlation id and the trace id; with this processor every span carries
the correlation id too, so a trace found by id in the logs and a log line found from a
span in a trace backend lead to each other. The id is read from
``energy_common.context`` when a span starts (a recorded span only).
"""

from __future__ import annotations

from energy_common.context import get_correlation_id
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

__all__ = ["CORRELATION_ATTRIBUTE", "CorrelationIdSpanProcessor"]

#: The span attribute that holds the correlation id.
CORRELATION_ATTRIBUTE = "correlation_id"


class CorrelationIdSpanProcessor(SpanProcessor):
    """Set ``correlation_id`` on each span that starts while a correlation id is current."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Copy the current correlation id onto the starting span."""
        cid = get_correlation_id()
        if cid is not None:
            span.set_attribute(CORRELATION_ATTRIBUTE, cid)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do when a span ends."""
