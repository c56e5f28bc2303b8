"""Spans and metrics of the MQTT path, through the OpenTelemetry API and a metrics Protocol.

Nothing here imports energy-monitoring: spans go through the OpenTelemetry *API* (a
no-op until an SDK is configured, and skipped entirely then), metrics through any
object with the :class:`MetricsSink` methods (energy-monitoring's ``MetricsRegistry``
has them). Without a sink and without an SDK the manager never calls this module on
the per-message path.

Spans (OpenTelemetry messaging conventions):

* ``publish {topic template}``, PRODUCER, around each publish; the trace context the
  message carries is this span's.
* ``process {subscription filter}``, CONSUMER, around each handler call. Its *parent* is
  the publisher's context carried by the message: the manager processes one message
  per span (no batches), the convention allows the creation context as parent then,
  and a parent puts the handler's work in the publisher's trace (API request → publish
  → process → reply), which a link would not. A message without a context starts a
  new trace. A handler that raises sets the span's status to error with an exception
  event; a dead letter before the handler (undecodable, invalid, no handler) gets an
  error span of its own with the reason.

  With the SDK's usual samplers the decision is made before the SDK is called
  (:mod:`energy_messaging.mqtt._sampling`): a message whose span would be dropped runs
  its handler under a lazy non-recording span, and costs no SDK span.

Label values are topic *templates* (the subscription filter, or the topic with
id-like levels replaced by ``+``), never raw device ids, so the label sets stay few.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from energy_messaging._metrics import MetricsSink
from energy_messaging.mqtt._sampling import SamplingGate

if TYPE_CHECKING:
    from energy_messaging.mqtt._message import DeadLetter, MQTTMessage
    from energy_messaging.mqtt._router import Subscription

__all__ = [
    "DEAD_LETTER_REASONS",
    "MetricsSink",
    "Observer",
    "attach",
    "detach",
    "topic_template",
    "tracer",
]

#: Every reason a message is dead-lettered for (their counters start at 0).
DEAD_LETTER_REASONS = ("decode_error", "handler_error", "no_handler", "processing_error", "validation_error")

_SCOPE = "energy_messaging.mqtt"

_TEMPLATE_CACHE_LIMIT = 10_000
_provider_and_tracer: tuple[object, Any] | None = None


class HandlerCall(Protocol):
    """The inbound path's handler call: message, correlation id, carrier, and a context to run under."""

    def __call__(
        self, sub: Subscription, msg: MQTTMessage, cid: str | None, carrier: dict[str, str], otel: Any = None, /
    ) -> Awaitable[BaseException | None]: ...


def tracer() -> Any:
    """Return the MQTT tracer if an OpenTelemetry SDK is configured, else None (spans skipped).

    Cheap on the per-message path: without ``opentelemetry.trace`` imported, or with the
    API's proxy / no-op provider, it is a dict lookup and an ``isinstance``.
    """
    global _provider_and_tracer  # noqa: PLW0603 - the tracer of the current provider, cached
    api = sys.modules.get("opentelemetry.trace")
    if api is None:
        return None
    # The global the API's set_tracer_provider() sets, read directly: while none is set,
    # get_tracer_provider() looks up OTEL_PYTHON_TRACER_PROVIDER in os.environ (~1-2 µs).
    provider: Any = getattr(api, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is None and not _env_provider():
        return None
    if provider is None or provider is _UNKNOWN:
        provider = api.get_tracer_provider()
    cached = _provider_and_tracer
    if cached is not None and cached[0] is provider:
        return cached[1]  # one identity check: the isinstance checks below go through ABCMeta
    found: Any = None
    if not isinstance(provider, (api.ProxyTracerProvider, api.NoOpTracerProvider)):
        from energy_messaging.__about__ import __version__  # noqa: PLC0415

        found = provider.get_tracer(_SCOPE, __version__)
        _load_api()
    _provider_and_tracer = (provider, found)
    return found


_UNKNOWN = object()
_env_provider_set: bool | None = None


def _env_provider() -> bool:
    """Whether the environment names a tracer provider for the API to load (read once)."""
    global _env_provider_set  # noqa: PLW0603 - the environment is read once per process
    if _env_provider_set is None:
        _env_provider_set = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
    return _env_provider_set


_context: Any = None  # opentelemetry.context and .trace, once an SDK was found
_trace: Any = None
#: The parent of a span for a message without trace context: a new trace, not the worker task's context.
_EMPTY: Any = None
_extract: Any = None


def _load_api() -> None:
    global _context, _trace, _EMPTY, _extract
    from energy_common.propagation import extract_context  # noqa: PLC0415
    from opentelemetry import context, trace  # noqa: PLC0415 - only once an SDK is configured

    _context, _trace, _EMPTY, _extract = context, trace, context.Context(), extract_context


def attach(otel_context: Any) -> Any:
    """Make an OpenTelemetry context current (an SDK was found); returns the token for :func:`detach`."""
    return _context.attach(otel_context)


def detach(token: Any) -> None:
    """Undo :func:`attach`."""
    _context.detach(token)


def _start(found: Any, name: str, context: Any, kind: Any, attributes: dict[str, Any]) -> Any:
    # The sampler sees the system and destination; the rest is set on a recorded span only.
    return found.start_span(name, context=context, kind=kind, attributes=attributes)


def _id_like(level: str) -> bool:
    return any(char.isdigit() for char in level)


def topic_template(topic: str, templates: Iterable[Any] = ()) -> str:
    """Return the low-cardinality template of a topic, for span names and metric labels.

    The first of ``templates`` (compiled ``TopicPattern`` objects) that matches gives its
    filter; then every level holding a digit (device ids, instance ids) becomes ``+``.

    Example:
        >>> topic_template("devices/meter-042/commands")
        'devices/+/commands'
        >>> topic_template("ops/dead-letters")
        'ops/dead-letters'
    """
    for pattern in templates:
        if pattern.match(topic) is not None:
            topic = str(pattern.match_filter)
            break
    return "/".join("+" if _id_like(level) else level for level in topic.split("/"))


class Observer:
    """The spans and metrics of one manager.

    Args:
        metrics: Where metrics go, or None (spans only).
        templates: Compiled topic patterns that name published topics (see :func:`topic_template`).
        filters: Returns the manager's current subscription patterns (also used as templates).
    """

    def __init__(
        self, metrics: MetricsSink | None, templates: Iterable[Any] = (), filters: Callable[[], Iterable[Any]] = tuple
    ) -> None:
        self.metrics = metrics
        self._templates = tuple(templates)
        self._filters = filters
        self._names: dict[str, str] = {}
        self._tags: dict[tuple[str, int], dict[str, str]] = {}
        self._reconnects = 0
        self._gate: tuple[Any, SamplingGate | None] = (None, None)  # (tracer, its gate)
        if metrics is not None:
            for reason in DEAD_LETTER_REASONS:  # alerts see the first dead letter, not a new series
                metrics.increment_counter("mqtt.dead_letters", 0, {"reason": reason})
            metrics.increment_counter("mqtt.reconnects", 0)
            metrics.set_gauge("mqtt.connected", 0)

    def template(self, topic: str) -> str:
        """The template of a published topic (cached, bounded)."""
        name = self._names.get(topic)
        if name is None:
            name = topic_template(topic, (*self._templates, *self._filters()))
            if len(self._names) >= _TEMPLATE_CACHE_LIMIT:
                self._names.clear()
            self._names[topic] = name
        return name

    def filter_name(self, sub: Subscription) -> str:
        """The name of a subscription in spans and labels: its filter, id-like levels as ``+`` (cached)."""
        mqtt_filter = sub.pattern.mqtt_filter
        name = self._names.get(mqtt_filter)
        if name is None:
            name = self._names[mqtt_filter] = topic_template(mqtt_filter)
        return name

    def tags(self, template: str, qos: int) -> dict[str, str]:
        """The ``{topic, qos}`` labels of a template (one dict per pair, reused)."""
        key = (template, qos)
        tags = self._tags.get(key)
        if tags is None:
            tags = self._tags[key] = {"topic": template, "qos": str(qos)}
        return tags

    def subscribed(self, sub: Subscription) -> None:
        """Pre-set the counters of a new subscription to 0 (so a rate() sees its first message)."""
        metrics = self.metrics
        if metrics is not None:
            name = self.filter_name(sub)
            metrics.increment_counter("mqtt.messages.received", 0, self.tags(name, sub.qos))
            metrics.increment_counter("mqtt.handler.errors", 0, {"topic": name})

    # ------------------------------------------------------------------ publish
    async def publish(self, send: Callable[[], Awaitable[int]], topic: str, qos: int, found: Any) -> None:
        """Run ``send`` (the publish pipeline, returning the payload size) in a PRODUCER span of ``found``; count it.

        ``found`` is :func:`tracer`'s answer (None: no span).
        """
        template = self.template(topic)
        if found is None:
            await send()
        else:
            await _traced_publish(found, send, topic, template, qos)
        if self.metrics is not None:
            self.metrics.increment_counter("mqtt.messages.published", 1, self.tags(template, qos))

    # ------------------------------------------------------------------ consume
    async def process(
        self,
        call: HandlerCall,
        sub: Subscription,
        msg: MQTTMessage,
        cid: str | None,
        carrier: dict[str, str],
        *,
        found: Any,
    ) -> BaseException | None:
        """Run one handler call in a CONSUMER span of ``found`` (None: none) under the publisher's context; count and time it."""
        name = self.filter_name(sub)
        metrics = self.metrics
        started = time.perf_counter() if metrics is not None else 0.0
        if found is None:
            failure = await call(sub, msg, cid, carrier)
        elif (dropped := self.dropped(found, carrier)) is not None:
            failure = await call(sub, msg, cid, {}, dropped)  # not sampled: no SDK span
        else:
            gate = self._gate[1]
            failure = await _traced_process(found, call, sub, msg, name=name, cid=cid, carrier=carrier, gate=gate)
        if metrics is not None:
            metrics.increment_counter("mqtt.messages.received", 1, self.tags(name, msg.qos))
            metrics.observe_duration("mqtt.handler", time.perf_counter() - started, {"topic": name})
            if failure is not None:
                metrics.increment_counter("mqtt.handler.errors", 1, {"topic": name})
        return failure

    def dropped(self, found: Any, carrier: dict[str, str]) -> Any:
        """The context to run a handler under if the sampler drops its span (see ``_sampling``), else None."""
        tracer_gate = self._gate
        if tracer_gate[0] is found:
            gate = tracer_gate[1]
        else:
            gate = SamplingGate.for_tracer(found)
            self._gate = (found, gate)
        return gate.decide(carrier) if gate is not None else None

    def dead_letter(self, letter: DeadLetter) -> None:
        """Count a dead letter by reason; one before the handler also gets an error span."""
        if self.metrics is not None:
            self.metrics.increment_counter("mqtt.dead_letters", 1, {"reason": letter.reason})
        if letter.reason != "handler_error":  # that one's handler span already has the error
            found = tracer()
            if found is not None:
                _dead_letter_span(
                    found,
                    letter,
                    topic_template(letter.filter) if letter.filter else self.template(letter.topic or "?"),
                )

    # ------------------------------------------------------------------ gauges
    def sample(self, *, connected: bool, reconnects: int, queued: int, held: int, inflight: int,
               window: int, buffered: int) -> None:  # fmt: skip
        """Set the state gauges (called every second by the manager's metrics task)."""
        metrics = self.metrics
        if metrics is None:
            return
        metrics.set_gauge("mqtt.connected", 1 if connected else 0)
        if reconnects > self._reconnects:
            metrics.increment_counter("mqtt.reconnects", reconnects - self._reconnects)
            self._reconnects = reconnects
        metrics.set_gauge("mqtt.inbound.queued", queued)
        metrics.set_gauge("mqtt.inbound.held", held)
        metrics.set_gauge("mqtt.inflight", inflight)
        metrics.set_gauge("mqtt.inflight.limit", window)
        metrics.set_gauge("mqtt.publish.buffered", buffered)


# ---------------------------------------------------------------------- span helpers (SDK configured)
async def _traced_publish(found: Any, send: Callable[[], Awaitable[int]], topic: str, template: str, qos: int) -> None:
    trace = _trace
    # The sampler sees the system and destination; the rest is only set on a recorded span.
    span = _start(
        found,
        f"publish {template}",
        None,
        trace.SpanKind.PRODUCER,
        {"messaging.system": "mqtt", "messaging.destination.name": topic},
    )
    token = _context.attach(trace.set_span_in_context(span))
    try:
        size = await send()
    except BaseException as exc:
        _fail(span, exc)
        raise
    else:
        if span.is_recording():
            span.set_attributes(
                {
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "publish",
                    "messaging.destination.template": template,
                    "messaging.mqtt.qos": qos,
                    "messaging.message.body.size": size,
                }
            )
    finally:
        _context.detach(token)
        span.end()


async def _traced_process(
    found: Any,
    call: HandlerCall,
    sub: Subscription,
    msg: MQTTMessage,
    *,
    name: str,
    cid: str | None,
    carrier: dict[str, str],
    gate: SamplingGate | None,
) -> BaseException | None:
    trace, context = _trace, _context
    parent = _extract(carrier) if "traceparent" in carrier else _EMPTY
    span = _start(
        found,
        f"process {name}",
        parent,
        trace.SpanKind.CONSUMER,
        {"messaging.system": "mqtt", "messaging.destination.name": msg.topic},
    )
    if gate is not None:
        gate.check(span)
    if span.is_recording():
        span.set_attributes(
            {
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.subscription.name": sub.pattern.mqtt_filter,
                "messaging.mqtt.qos": msg.qos,
                "messaging.message.body.size": len(msg.raw),
            }
        )
        if cid is not None:
            span.set_attribute("correlation_id", cid)
    token = context.attach(trace.set_span_in_context(span, parent))
    try:
        # The span carries the trace parent; the call sets the correlation id only.
        failure = await call(sub, msg, cid, {})
        if failure is not None:
            _fail(span, failure)
        return failure
    finally:
        context.detach(token)
        span.end()


def _dead_letter_span(found: Any, letter: DeadLetter, name: str) -> None:
    trace = _trace
    span = found.start_span(
        f"process {name}",
        context=_EMPTY,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "mqtt",
            "messaging.operation.type": "process",
            "messaging.destination.name": letter.topic,
            "messaging.message.body.size": len(letter.raw),
            "energy.dead_letter.reason": letter.reason,
        },
    )
    if span.is_recording():
        span.add_event(
            "exception",
            {"exception.type": f"DeadLetter[{letter.reason}]", "exception.message": letter.detail[:1000]},
        )
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"dead letter: {letter.reason}"))
    span.end()


def _fail(span: Any, exc: BaseException) -> None:
    if span.is_recording():
        trace = _trace
        span.record_exception(exc)
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:1000]))
