"""The MQTT sampling gate decides as the SDK would, and builds the span context the SDK would have built.

The gate (``energy_messaging.mqtt._sampling``) skips the SDK for a message whose span the
sampler would drop. These tests hold it to the SDK itself: for every carrier and trace
id, the gate's decision is the SDK sampler's, a sampled root gets the trace id the gate
decided on, and a dropped message's lazy span context equals the SDK's non-recording
one (trace id, flags, trace state, not remote). The end-to-end tests run a real
manager on Mosquitto in a child process (one global tracer provider per process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")

from energy_messaging.mqtt._sampling import SamplingGate  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.context import Context  # noqa: E402
from opentelemetry.propagate import extract  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator  # noqa: E402
from opentelemetry.sdk.trace.sampling import (  # noqa: E402
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)

CHILD = Path(__file__).with_name("mqtt_sampling_child.py")
LOW = (1 << 64) - 1


def _tracer(sampler: Sampler, ids: IdGenerator | None = None) -> Any:
    provider = TracerProvider(sampler=sampler, id_generator=ids or RandomIdGenerator())
    return provider.get_tracer("test")


class _Counting(IdGenerator):
    """A deterministic, non-random id generator (custom generators must work too)."""

    def __init__(self) -> None:
        self.next = 0x1234

    def generate_span_id(self) -> int:
        self.next += 1
        return self.next

    def generate_trace_id(self) -> int:
        self.next += 0x9E3779B97F4A7C15
        return self.next & ((1 << 128) - 1) or 1

    def is_trace_id_random(self) -> bool:
        return False


class _Custom(Sampler):
    def should_sample(self, parent_context: Any, trace_id: int, name: str, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE)

    def get_description(self) -> str:
        return "Custom"


class _LyingRatio(TraceIdRatioBased):
    """A subclass (its decision may differ from the base class's): the gate must not trust it."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE)


def _sdk_span(tracer: Any, carrier: dict[str, str]) -> Any:
    parent = extract(carrier) if "traceparent" in carrier else Context()
    return tracer.start_span("process t", context=parent, kind=trace.SpanKind.CONSUMER)


def _dropped_context(dropped: Any) -> Any:
    return trace.get_current_span(dropped).get_span_context()


# ---------------------------------------------------------------------- which samplers get a gate
@pytest.mark.parametrize(
    "sampler",
    [
        ALWAYS_ON,
        ALWAYS_OFF,
        TraceIdRatioBased(0.01),
        ParentBased(TraceIdRatioBased(0.25)),
        ParentBased(ALWAYS_ON),
        ParentBased(ALWAYS_OFF),
        ParentBased(TraceIdRatioBased(0.5), local_parent_sampled=ALWAYS_OFF),  # local delegates never decide here
    ],
)
def test_known_samplers_get_a_gate(sampler: Sampler) -> None:
    """The SDK's own samplers, and ParentBased over them with the default remote delegates."""
    assert SamplingGate.for_tracer(_tracer(sampler)) is not None


@pytest.mark.parametrize(
    "sampler",
    [
        _Custom(),
        _LyingRatio(0.01),
        ParentBased(_Custom()),
        ParentBased(TraceIdRatioBased(0.01), remote_parent_sampled=ALWAYS_OFF),
        ParentBased(TraceIdRatioBased(0.01), remote_parent_not_sampled=ALWAYS_ON),
    ],
)
def test_other_samplers_get_none(sampler: Sampler) -> None:
    """A sampler whose decision the gate cannot reproduce exactly goes through the SDK for every message."""
    assert SamplingGate.for_tracer(_tracer(sampler)) is None


def test_a_carrier_with_baggage_or_unknown_keys_goes_through_the_sdk() -> None:
    """The gate understands traceparent and tracestate only; baggage must reach the handler."""
    gate = SamplingGate.for_tracer(_tracer(ParentBased(ALWAYS_OFF)))
    assert gate is not None
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    assert gate.decide({"traceparent": parent}) is not None
    assert gate.decide({"traceparent": parent, "baggage": "tenant=a"}) is None
    assert gate.decide({"traceparent": parent, "x-custom": "1"}) is None


# ---------------------------------------------------------------------- the decision is the SDK's
_hex = st.text("0123456789abcdef", min_size=1, max_size=1)
_flags = st.sampled_from(["00", "01", "02", "03", "ff", "0g"])
_traceparent = st.one_of(
    st.builds(
        lambda version, trace_id, span_id, flags, tail: f"{version}-{trace_id}-{span_id}-{flags}{tail}",
        st.sampled_from(["00", "01", "ff", "zz"]),
        st.one_of(st.just("0" * 32), st.integers(1, (1 << 128) - 1).map(lambda i: f"{i:032x}")),
        st.one_of(st.just("0" * 16), st.integers(1, (1 << 64) - 1).map(lambda i: f"{i:016x}")),
        _flags,
        st.sampled_from(["", "-extra", " ", "\t"]),
    ),
    st.text(max_size=60),
    st.just("00-" + "a" * 600),
)
_carrier = st.fixed_dictionaries(
    {},
    optional={
        "traceparent": _traceparent,
        "tracestate": st.sampled_from(["vendor=1", "a=b,c=d", "bad state"]),
        "x-request-id": st.just("req-1"),
    },
)
_samplers = st.sampled_from(
    [
        ALWAYS_ON,
        ALWAYS_OFF,
        TraceIdRatioBased(0.5),
        TraceIdRatioBased(0.01),
        ParentBased(TraceIdRatioBased(0.5)),
        ParentBased(TraceIdRatioBased(0.01)),
        ParentBased(ALWAYS_OFF),
        ParentBased(ALWAYS_ON),
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sampler=_samplers, carrier=_carrier, custom_ids=st.booleans())
def test_decision_and_span_context_match_the_sdk(sampler: Sampler, carrier: dict[str, str], custom_ids: bool) -> None:
    """Sampled: the SDK samples it (with the staged trace id); dropped: the SDK drops it, same span context."""
    tracer = _tracer(sampler, _Counting() if custom_ids else None)
    gate = SamplingGate.for_tracer(tracer)
    assert gate is not None
    dropped = gate.decide(carrier)
    if dropped is None:
        span = _sdk_span(tracer, carrier)
        gate.check(span)
        assert gate.enabled, (sampler.get_description(), carrier)
        assert span.is_recording()
        assert span.get_span_context().trace_flags.sampled
        span.end()
        return
    ours = _dropped_context(dropped)
    parent = trace.get_current_span(extract(carrier)).get_span_context()
    # What the SDK does with the same parent and the same trace id.
    decision = sampler.should_sample(
        extract(carrier) if "traceparent" in carrier else Context(), ours.trace_id, "process t"
    )
    assert not decision.decision.is_sampled(), (sampler.get_description(), carrier)
    reference = _sdk_span(_tracer(ALWAYS_OFF, _Counting() if custom_ids else None), carrier).get_span_context()
    assert not ours.trace_flags.sampled
    assert ours.is_remote is False
    assert ours.is_valid
    assert ours.trace_flags == reference.trace_flags
    assert ours.trace_state == reference.trace_state
    if parent.is_valid:
        assert ours.trace_id == parent.trace_id
    else:
        assert ours.trace_id != 0


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.3, 1.0])
def test_ratio_of_new_traces_and_the_staged_trace_id(rate: float) -> None:
    """New traces are sampled at the ratio; each sampled one carries the trace id the gate decided on."""
    tracer = _tracer(ParentBased(TraceIdRatioBased(rate)))
    gate = SamplingGate.for_tracer(tracer)
    assert gate is not None
    sampled = 0
    bound = TraceIdRatioBased(rate).bound
    for _ in range(20_000):
        dropped = gate.decide({})
        if dropped is None:
            span = _sdk_span(tracer, {})
            gate.check(span)
            assert span.get_span_context().trace_id & LOW < bound
            sampled += 1
            span.end()
        else:
            assert _dropped_context(dropped).trace_id & LOW >= bound
    assert gate.enabled
    assert abs(sampled / 20_000 - rate) < 0.01


def test_check_turns_the_gate_off_when_the_sdk_disagrees() -> None:
    """If the SDK did not take the staged trace id (or dropped the span), every later message goes through the SDK."""
    tracer = _tracer(ParentBased(TraceIdRatioBased(1 - 1e-12)))
    gate = SamplingGate.for_tracer(tracer)
    assert gate is not None
    assert gate.decide({}) is None
    # Started by someone else's path: the staged id was not taken by this span.
    other = _tracer(ALWAYS_OFF).start_span("x", context=Context())
    gate.check(other)
    assert not gate.enabled
    assert gate.decide({}) is None  # off: the SDK decides


def test_a_handler_child_span_and_injection_continue_the_dropped_trace() -> None:
    """Under a dropped message's context, a child span is dropped too and the injected traceparent says so."""
    from opentelemetry import context as otel_context
    from opentelemetry.propagate import inject

    tracer = _tracer(ParentBased(TraceIdRatioBased(0.0)))
    gate = SamplingGate.for_tracer(tracer)
    assert gate is not None
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    for carrier in ({}, {"traceparent": parent, "tracestate": "vendor=1"}):
        dropped = gate.decide(carrier)
        assert dropped is not None
        token = otel_context.attach(dropped)
        try:
            child = tracer.start_span("store")
            out: dict[str, str] = {}
            inject(out)
        finally:
            otel_context.detach(token)
        ours = _dropped_context(dropped)
        assert not child.is_recording()
        assert child.get_span_context().trace_id == ours.trace_id
        assert out["traceparent"] == f"00-{ours.trace_id:032x}-{ours.span_id:016x}-{int(ours.trace_flags):02x}"
        if carrier:
            assert ours.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
            assert out["tracestate"] == "vendor=1"


# ---------------------------------------------------------------------- end to end, on Mosquitto
def _run_child(mqtt_broker: Any, prefix: str, *, gate: bool) -> dict[str, Any]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, str(CHILD), mqtt_broker.host, str(mqtt_broker.port), prefix, "on" if gate else "off"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.mqtt
@pytest.mark.parametrize("gate", [True, False], ids=["gate", "sdk"])
def test_a_real_manager_samples_as_the_sdk_would(mqtt_broker: Any, mqtt_topic_prefix: str, gate: bool) -> None:
    """Received with sampled, unsampled and no trace context: spans and replies obey one sampling decision per trace.

    The child runs a manager on Mosquitto with ``ParentBased(TraceIdRatioBased(0.25))``
    (gate on, or forced off: the SDK decides every message) and a handler that opens a
    child span and publishes a reply; it reports what was exported and what the replies
    carried. The same invariants hold with and without the gate.
    """
    result = _run_child(mqtt_broker, mqtt_topic_prefix, gate=gate)
    assert result["gate"] is gate
    assert result["received"] == result["sent"] == 600
    # Remote sampled parents: every one has a CONSUMER span (its child), and a store span.
    assert result["sampled_parent_spans"] == 200
    assert result["sampled_parent_stores"] == 200
    # Remote unsampled parents: nothing recorded; replies carry the parent's trace id, flag 00.
    assert result["unsampled_parent_spans"] == 0
    assert result["unsampled_replies_ok"] == 200
    # New traces: about 25 % recorded, each one under the ratio bound, store spans in the same trace;
    # the dropped ones' replies carry unsampled traceparents of new trace ids above the bound.
    assert 20 <= result["root_spans"] <= 85
    assert result["root_spans_under_bound"] == result["root_spans"]
    assert result["root_stores_in_trace"] == result["root_spans"]
    assert result["root_dropped_replies_ok"] == 200 - result["root_spans"]


class _Fixed(IdGenerator):
    """Hands out the given trace ids, in order."""

    def __init__(self, trace_ids: list[int]) -> None:
        self.trace_ids = trace_ids

    def generate_span_id(self) -> int:
        return 0xABC

    def generate_trace_id(self) -> int:
        return self.trace_ids.pop(0)

    def is_trace_id_random(self) -> bool:
        return False


def test_the_ratio_bound_itself_is_dropped_one_below_it_sampled() -> None:
    """At the boundary trace ids the gate agrees with ``TraceIdRatioBased`` (low 64 bits < bound)."""
    bound = TraceIdRatioBased(0.25).bound
    high = 7 << 64
    tracer = _tracer(ParentBased(TraceIdRatioBased(0.25)), _Fixed([high | bound, high | (bound - 1)]))
    gate = SamplingGate.for_tracer(tracer)
    assert gate is not None
    dropped = gate.decide({})
    assert dropped is not None
    assert _dropped_context(dropped).trace_id == high | bound
    assert gate.decide({}) is None
    span = _sdk_span(tracer, {})
    gate.check(span)
    assert gate.enabled
    assert span.get_span_context().trace_id == high | (bound - 1)
