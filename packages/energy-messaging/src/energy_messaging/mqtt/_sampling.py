"""Sampling decided before the SDK: an unsampled message costs no SDK span.

With ``ParentBased(TraceIdRatioBased(0.01))`` the SDK would build, for each of the 99 %
of messages it drops, a parent context from the carrier, a trace id, a span id, a
:class:`~opentelemetry.trace.SpanContext` and a ``NonRecordingSpan``: most of the
per-message cost of tracing. :class:`SamplingGate` makes the same decision first, for
the samplers whose decision it can reproduce exactly (``ALWAYS_ON``, ``ALWAYS_OFF``,
``TraceIdRatioBased`` and ``ParentBased`` over them with the default remote delegates),
and for a dropped message attaches a context holding a lazy non-recording span: its
:class:`~opentelemetry.trace.SpanContext` (the one the SDK would have made: same trace
id, flags and trace state) is built only if the handler asks for it (a child span, an
injected ``traceparent``). A sampled message goes through the SDK as before; for a new
trace the gate hands the SDK the trace id it decided on (through the tracer's id
generator), and checks that the SDK agreed.

Anything the gate cannot vouch for (a custom sampler or propagator, a carrier with
baggage, the SDK's own span metrics switched on, a disabled tracer) goes through the SDK.
The SDK is imported lazily, so this module imports without it.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

__all__ = ["SamplingGate"]

logger = logging.getLogger("energy_messaging.mqtt")

_LOW = (1 << 64) - 1
_ALL = 1 << 64  # the bound of a sampler that samples every trace id
_TRACEPARENT_MAX = 512  # the SDK propagator's limit
#: Carrier keys the gate understands; any other (baggage, a custom propagator's) goes through the SDK.
_KNOWN_KEYS = frozenset({"traceparent", "tracestate", "x-request-id", "x-correlation-id"})


class _StagedIds:
    """The tracer's id generator, handing out a trace id the gate staged (once, on this thread)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._local = threading.local()

    def stage(self, trace_id: int) -> None:
        self._local.trace_id = trace_id

    def take(self) -> int | None:
        staged: int | None = getattr(self._local, "trace_id", None)
        self._local.trace_id = None
        return staged

    def generate_trace_id(self) -> int:
        staged = self.take()
        if staged is not None:
            return staged
        trace_id: int = self.inner.generate_trace_id()
        return trace_id

    def generate_span_id(self) -> int:
        span_id: int = self.inner.generate_span_id()
        return span_id

    def is_trace_id_random(self) -> bool:
        method = getattr(self.inner, "is_trace_id_random", None)
        return bool(method()) if method is not None else False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _sampler_model(sampler: Any) -> tuple[bool, int] | None:
    """``(parent_based, root_bound)`` of a sampler whose decision is reproducible, else None."""
    from opentelemetry.sdk.trace import sampling  # noqa: PLC0415 - only with an SDK tracer

    def bound(root: Any) -> int | None:
        if root is sampling.ALWAYS_ON:
            return _ALL
        if root is sampling.ALWAYS_OFF:
            return 0
        if type(root) is sampling.TraceIdRatioBased:
            return int(root.bound)
        return None

    if type(sampler) is sampling.ParentBased:
        remote = (
            getattr(sampler, "_remote_parent_sampled", None),
            getattr(sampler, "_remote_parent_not_sampled", None),
        )
        if remote != (sampling.ALWAYS_ON, sampling.ALWAYS_OFF):
            return None
        root_bound = bound(getattr(sampler, "_root", None))
        return None if root_bound is None else (True, root_bound)
    root_bound = bound(sampler)
    return None if root_bound is None else (False, root_bound)


class SamplingGate:
    """Decides, before the SDK, whether a received message's CONSUMER span is sampled.

    Build it with :meth:`for_tracer`; per message, :meth:`decide` returns None (start
    the span through the SDK, then call :meth:`check` with it) or the context to run the
    handler under (dropped: a lazy non-recording span as the current span).
    """

    def __init__(self, tracer: Any, *, parent_based: bool, bound: int, textmap: Any) -> None:
        from opentelemetry import propagate, trace  # noqa: PLC0415
        from opentelemetry.context import Context  # noqa: PLC0415
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator  # noqa: PLC0415
        from opentelemetry.trace.propagation import _SPAN_KEY  # noqa: PLC0415
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: PLC0415

        ids = tracer.id_generator
        if not isinstance(ids, _StagedIds):
            ids = tracer.id_generator = _StagedIds(ids)
        self._tracer = tracer
        self._ids: _StagedIds = ids
        self._random = type(ids.inner) is RandomIdGenerator
        self._parent_based = parent_based
        self._bound = bound
        self._textmap = textmap
        self._traceparent = TraceContextTextMapPropagator._TRACEPARENT_HEADER_FORMAT_RE
        self._context_type = Context
        self._span_key = _SPAN_KEY
        self._lazy_type = _lazy_span_type(trace)
        self._propagate = propagate
        self._tracer_enabled = getattr(tracer, "_is_enabled", None) or _always
        self._expected: int | None = None
        self.enabled = True

    @classmethod
    def for_tracer(cls, tracer: Any) -> SamplingGate | None:
        """The gate for an SDK tracer, or None if its decision cannot be reproduced exactly."""
        try:
            return cls._build(tracer)
        except Exception:
            logger.debug("no sampling gate for %r", tracer, exc_info=True)
            return None

    @classmethod
    def _build(cls, tracer: Any) -> SamplingGate | None:
        from opentelemetry import propagate  # noqa: PLC0415
        from opentelemetry.baggage.propagation import W3CBaggagePropagator  # noqa: PLC0415
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: PLC0415

        model = _sampler_model(getattr(tracer, "sampler", None))
        if model is None or not hasattr(tracer, "id_generator"):
            return None
        metrics = getattr(tracer, "_tracer_metrics", None)
        if metrics is not None and type(metrics).__name__ != "NoOpTracerMetrics":
            return None  # the SDK counts every span it starts: let it see them
        textmap = propagate.get_global_textmap()
        kinds = [type(part) for part in getattr(textmap, "_propagators", [textmap])]
        if TraceContextTextMapPropagator not in kinds or set(kinds) - {
            TraceContextTextMapPropagator,
            W3CBaggagePropagator,
        }:
            return None
        return cls(tracer, parent_based=model[0], bound=model[1], textmap=textmap)

    # ------------------------------------------------------------------ per message
    def decide(self, carrier: dict[str, str]) -> Any:
        """None: sampled or not decidable (start the span through the SDK); else the context of a dropped message."""
        if not self.enabled or (carrier and carrier.keys() - _KNOWN_KEYS):
            return None
        if not self._tracer_enabled() or self._textmap is not self._propagate.get_global_textmap():
            return None
        header = carrier.get("traceparent")
        if header is not None:
            parent = self._parent(header)
            if parent is not None:
                sampled = bool(parent & 1) if self._parent_based else (parent >> 8) < self._bound
                return None if sampled else self._dropped(carrier, 0)
        # A new trace: the decision depends on the trace id, drawn here.
        if self._bound == _ALL:
            return None  # every trace id is sampled: the SDK draws its own
        if self._random:
            low = random.getrandbits(64)
            trace_id = 0
        else:
            trace_id = self._ids.inner.generate_trace_id()
            low = trace_id & _LOW
        if low < self._bound:
            if self._random:
                trace_id = (random.getrandbits(64) << 64) | low
                while trace_id == 0:  # pragma: no cover - one in 2**128
                    trace_id = random.getrandbits(128)
            self._ids.stage(trace_id)
            self._expected = trace_id
            return None
        return self._dropped(None, trace_id or low)

    def _parent(self, header: str) -> int | None:
        """``(low 64 bits of the trace id << 8) | flags`` of a traceparent the SDK accepts, else None."""
        if len(header) > _TRACEPARENT_MAX:
            return None
        match = self._traceparent.search(header)
        if match is None:
            return None
        version, trace_id, span_id, flags, rest = match.groups()
        if trace_id == "0" * 32 or span_id == "0" * 16 or version == "ff" or (version == "00" and rest):
            return None
        return (int(trace_id[16:], 16) << 8) | int(flags, 16)

    def _dropped(self, carrier: dict[str, str] | None, trace_id: int) -> Any:
        span = self._lazy_type(self, carrier, trace_id)
        return self._context_type({self._span_key: span})

    def check(self, span: Any) -> None:
        """After the SDK started a sampled span: turn the gate off if the SDK disagreed with it."""
        expected, self._expected = self._expected, None
        leftover = self._ids.take()  # normally taken by the SDK already
        context = span.get_span_context()
        if leftover is not None or not context.trace_flags.sampled or expected not in (None, context.trace_id):
            self.enabled = False
            logger.warning("MQTT sampling gate turned off: the SDK's sampling differs from the gate's")

    # ------------------------------------------------------------------ lazy span context
    def span_context(self, carrier: dict[str, str] | None, trace_id: int) -> Any:
        """The SpanContext the SDK would have given a dropped message's span."""
        from energy_common.propagation import extract_context  # noqa: PLC0415
        from opentelemetry import trace  # noqa: PLC0415

        ids = self._ids
        flags = 0
        random_flag = getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0)
        trace_state = None
        if carrier is not None:
            parent = trace.get_current_span(extract_context(carrier)).get_span_context()
            trace_id, trace_state = parent.trace_id, parent.trace_state
            if getattr(parent.trace_flags, "random_trace_id", False):
                flags |= random_flag
        else:
            if self._random:
                trace_id = (random.getrandbits(64) << 64) | trace_id
                while trace_id == 0:  # pragma: no cover - one in 2**128
                    trace_id = random.getrandbits(128)
            if ids.is_trace_id_random():
                flags |= random_flag
        return trace.SpanContext(
            trace_id,
            ids.generate_span_id(),
            is_remote=False,
            trace_flags=trace.TraceFlags(flags),
            trace_state=trace_state,
        )


def _always() -> bool:
    return True


_LAZY: Any = None


def _lazy_span_type(trace: Any) -> Any:
    """The NonRecordingSpan subclass whose SpanContext is built on first use (made once)."""
    global _LAZY  # noqa: PLW0603 - the class needs the API's NonRecordingSpan, imported lazily
    if _LAZY is None:

        class _DroppedSpan(trace.NonRecordingSpan):  # type: ignore[misc]
            """The span of a dropped message: non-recording, its context built when asked for."""

            def __init__(self, gate: SamplingGate, carrier: dict[str, str] | None, trace_id: int) -> None:
                self._context = None
                self._made = (gate, carrier, trace_id)

            def get_span_context(self) -> Any:
                context = self._context
                if context is None:
                    gate, carrier, trace_id = self._made
                    context = self._context = gate.span_context(carrier, trace_id)
                return context

            def __repr__(self) -> str:
                return f"_DroppedSpan({self.get_span_context()!r})"

        _LAZY = _DroppedSpan
    return _LAZY
