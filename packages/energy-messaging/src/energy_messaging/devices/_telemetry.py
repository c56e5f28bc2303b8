"""A command's span and its metrics, through the OpenTelemetry API and a metrics Protocol.

One span per command lifecycle (``command <name>``, kind CLIENT), opened by the replica
that accepted it and ended when that replica sees the command finish (its own
transition, or the final state read back from the store), with events ``sent``,
``delivered``, ``reply``, ``timeout``, ``expired``, ``cancelled``. Without an
OpenTelemetry SDK the API hands out no-op spans. The publish runs inside the span, so
the trace context the command carries to the meter is this span's.

Metrics go to any object with ``increment_counter`` and ``observe_duration`` (the
:class:`CommandMetrics` Protocol; ``energy_monitoring.MetricsRegistry`` fits it), with
low-cardinality labels only (the final state, never a device id):

- counter ``commands`` (``<namespace>_commands_total{state}``): finished commands;
- histogram ``command.round_trip`` (``<namespace>_command_round_trip_duration_seconds{state}``):
  seconds from sent to the reply, for ``succeeded`` and ``failed``.

The span starts in the context current at ``begin`` (the HTTP request's server span in a
service) and carries the request's correlation id (``correlation_id`` attribute, from the
tracer provider's span processor). :func:`correlation_of` keeps that id current when the
command is published or changes state outside the request.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

from energy_common.context import get_correlation_id, reset_correlation_id, set_correlation_id

from energy_messaging.devices._commands import Command

__all__ = ["CommandMetrics", "CommandTelemetry", "correlation_of"]

logger = logging.getLogger("energy_messaging.devices")

_EVENTS = {
    "sent": "sent",
    "delivered": "delivered",
    "succeeded": "reply",
    "failed": "reply",
    "timed_out": "timeout",
    "expired": "expired",
    "cancelled": "cancelled",
}
_MAX_OPEN_SPANS = 10_000


@contextmanager
def correlation_of(command: Command) -> Iterator[None]:
    """Make the command's correlation id (its request's) current for the block, if it has one.

    The dispatcher publishes a command and runs its transition hooks under it, also outside
    the request (a queued command sent from the status handler, a sweeper's timeout).
    """
    if command.correlation_id is None or command.correlation_id == get_correlation_id():
        yield
        return
    token = set_correlation_id(command.correlation_id)
    try:
        yield
    finally:
        reset_correlation_id(token)


@runtime_checkable
class CommandMetrics(Protocol):
    """Where command metrics go (``energy_monitoring.MetricsRegistry`` satisfies it)."""

    def increment_counter(self, name: str, value: float = 1, tags: Mapping[str, object] | None = None) -> None:
        """Add ``value`` to the counter ``name``."""

    def observe_duration(self, name: str, seconds: float, tags: Mapping[str, object] | None = None) -> None:
        """Record a duration in the histogram ``<name>_duration_seconds``."""


class CommandTelemetry:
    """Spans and metrics of the commands one replica accepted; never raises into the caller.

    Args:
        metrics: Where the counters go; None for spans only.
        tracer_provider: OpenTelemetry tracer provider (default: the global one).
    """

    def __init__(self, metrics: CommandMetrics | None = None, *, tracer_provider: Any = None) -> None:
        self._metrics = metrics
        self._provider = tracer_provider
        self._spans: OrderedDict[str, Any] = OrderedDict()
        self._tracer: Any = None

    def _start(self, command: Command) -> Any:
        from opentelemetry import trace  # noqa: PLC0415 - lazy: import energy_messaging stays light

        if self._tracer is None:
            self._tracer = trace.get_tracer("energy_messaging.devices", tracer_provider=self._provider)
        span = self._tracer.start_span(
            f"command {command.command}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "messaging.system": "mqtt",
                "energy.command.id": command.command_id,
                "energy.command.name": command.command,
                "energy.device.id": command.device_id,
            },
        )
        self._spans[command.command_id] = span
        while len(self._spans) > _MAX_OPEN_SPANS:
            _, oldest = self._spans.popitem(last=False)
            oldest.end()
        return span

    def open_ids(self) -> set[str]:
        """Ids of the commands whose span this replica still holds."""
        return set(self._spans)

    def begin(self, command: Command) -> None:
        """Open the command's span (a command this replica accepts) and note its context on the command.

        Called before the command is stored, so the record carries ``trace_context``.
        """
        try:
            span = self._start(command)
            context = span.get_span_context()
            if context.is_valid:
                from opentelemetry.trace import set_span_in_context  # noqa: PLC0415
                from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
                    TraceContextTextMapPropagator,
                )

                carrier: dict[str, str] = {}
                TraceContextTextMapPropagator().inject(carrier, context=set_span_in_context(span))
                command.trace_context = carrier or None
        except Exception:  # pragma: no cover - telemetry never breaks a command
            logger.exception("command span could not be started")

    def forget(self, command_id: str) -> None:
        """Drop the span of a command that was not stored (a duplicate, a refused one): it is never exported."""
        self._spans.pop(command_id, None)

    @contextmanager
    def current(self, command: Command) -> Iterator[None]:
        """Make the command's span current around its publish.

        The span itself when this replica holds it; else, when the command carries the
        ``trace_context`` of a span another replica opened, that span as remote parent,
        so the publish (and the meter's handling) stay in the command's trace.
        """
        span = self._spans.get(command.command_id)
        if span is None and not command.trace_context:
            yield
            return
        from opentelemetry import context as otel_context  # noqa: PLC0415
        from opentelemetry import trace  # noqa: PLC0415

        if span is not None:
            with trace.use_span(span, end_on_exit=False):
                yield
            return
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: PLC0415

        parent = TraceContextTextMapPropagator().extract(dict(command.trace_context or {}))
        token = otel_context.attach(parent)
        try:
            yield
        finally:
            otel_context.detach(token)

    def record(self, command: Command) -> None:
        """Record a transition: a span event, and at the end the status, metrics and span end."""
        try:
            self._record(command)
        except Exception:  # pragma: no cover - telemetry never breaks a command
            logger.exception("command telemetry failed for %s", command.command_id)

    def _record(self, command: Command) -> None:
        span = self._spans.get(command.command_id)
        event = _EVENTS.get(command.state)
        if span is not None and event is not None:
            span.add_event(event, {"energy.command.state": command.state})
        if not command.done:
            return
        if self._metrics is not None:
            self._metrics.increment_counter("commands", tags={"state": command.state})
            sent = command.at("sent")
            finished = command.history[-1][1] if command.history else None
            if command.state in ("succeeded", "failed") and sent is not None and finished is not None:
                self._metrics.observe_duration(
                    "command.round_trip", max(0.0, finished - sent), tags={"state": command.state}
                )
        self.finish(command, count=False)

    def finish(self, command: Command, *, count: bool = True) -> None:
        """End the span of a command seen finished (by this or another replica)."""
        span = self._spans.pop(command.command_id, None)
        if span is None:
            return
        from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

        if count and (event := _EVENTS.get(command.state)) is not None:
            span.add_event(event, {"energy.command.state": command.state})
        span.set_attribute("energy.command.state", command.state)
        if command.state != "succeeded":
            code = (command.error or {}).get("code", command.state)
            span.set_status(Status(StatusCode.ERROR, str(code)))
        span.end()
