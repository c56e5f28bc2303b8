"""Child of test_mqtt_sampling.py: a real manager on Mosquitto under ParentBased(TraceIdRatioBased(0.25)).

    python mqtt_sampling_child.py HOST PORT PREFIX on|off

Publishes 600 messages with aiomqtt (200 with a sampled remote parent, 200 with an
unsampled one, 200 without trace context) to a manager whose handler opens a ``store``
span and publishes a reply; a second aiomqtt client collects the replies' traceparents.
``off`` turns the sampling gate off (the SDK decides every message). Prints one JSON
line of counts for the test's assertions.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from typing import Any

import aiomqtt
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

RATE = 0.25
PER_KIND = 200
LOW = (1 << 64) - 1


async def main(host: str, port: int, prefix: str, gate: bool) -> dict[str, Any]:
    """Run the exchange and count what the test checks."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(RATE)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if not gate:
        from energy_messaging.mqtt import _sampling

        _sampling.SamplingGate.for_tracer = classmethod(lambda cls, tracer: None)  # type: ignore[method-assign,assignment]
    from energy_messaging import MQTTManager, MQTTMessage

    store_tracer = trace.get_tracer("child")
    rng = random.Random(7)
    sent: dict[int, tuple[str, int, int]] = {}  # i -> (kind, trace id, parent span id)
    received: set[int] = set()
    replies: dict[int, str] = {}
    async with MQTTManager(host, port, protocol="5") as mqtt:

        @mqtt.on(f"{prefix}/{{device_id}}/in")
        async def handler(message: MQTTMessage) -> None:
            i = int(message.payload["i"])
            with store_tracer.start_as_current_span("store", attributes={"i": i}):
                await mqtt.publish(f"{prefix}/meter-1/reply", {"i": i}, qos=1)
            received.add(i)

        async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.subscribe(f"{prefix}/+/reply", qos=1)
            await asyncio.sleep(0.3)
            for i in range(3 * PER_KIND):
                kind = ("sampled", "unsampled", "root")[i % 3]
                props = Properties(PacketTypes.PUBLISH)
                trace_id, span_id = rng.getrandbits(128) | 1, rng.getrandbits(64) | 1
                if kind != "root":
                    flags = "01" if kind == "sampled" else "00"
                    props.UserProperty = [("traceparent", f"00-{trace_id:032x}-{span_id:016x}-{flags}")]
                sent[i] = (kind, trace_id, span_id)
                await client.publish(f"{prefix}/meter-1/in", json.dumps({"i": i}), qos=1, properties=props)

            async def collect() -> None:
                async for message in client.messages:
                    pairs = dict(getattr(message.properties, "UserProperty", []) or [])
                    replies[int(json.loads(bytes(message.payload))["i"])] = pairs.get("traceparent", "")
                    if len(replies) == len(sent):
                        return

            await asyncio.wait_for(collect(), 60)
        used_gate = mqtt._observer._gate[1] is not None
    return _counts(exporter.get_finished_spans(), sent, received, replies, used_gate)


def _counts(spans: Any, sent: dict[int, tuple[str, int, int]], received: set[int], replies: dict[int, str],
            used_gate: bool) -> dict[str, Any]:  # fmt: skip
    bound = TraceIdRatioBased(RATE).bound
    consumers = [s for s in spans if s.kind is trace.SpanKind.CONSUMER]
    stores = {int(s.attributes["i"]): s for s in spans if s.name == "store"}
    by_kind = {kind: {i for i, v in sent.items() if v[0] == kind} for kind in ("sampled", "unsampled", "root")}
    sent_traces = {v[1] for v in sent.values()}

    def parse(header: str) -> tuple[int, int, int] | None:
        parts = header.split("-")
        return (int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)) if len(parts) == 4 else None

    sampled_spans = {
        s.context.span_id: s
        for s in consumers
        if s.parent is not None and any(s.parent.span_id == sent[i][2] and s.context.trace_id == sent[i][1]
                                        for i in by_kind["sampled"])
    }  # fmt: skip
    unsampled_traces = {sent[i][1] for i in by_kind["unsampled"]}
    roots = {s.context.trace_id: s for s in consumers if s.parent is None}
    unsampled_ok = 0
    for i in by_kind["unsampled"]:
        got = parse(replies.get(i, ""))
        unsampled_ok += got is not None and got[0] == sent[i][1] and got[1] != sent[i][2] and not got[2] & 1
    root_dropped_ok = 0
    root_stores = 0
    for i in by_kind["root"]:
        got = parse(replies.get(i, ""))
        if got is None:
            continue
        if got[2] & 1:
            store = stores.get(i)
            span = roots.get(got[0])
            root_stores += store is not None and span is not None and store.parent.span_id == span.context.span_id
        else:
            root_dropped_ok += got[0] not in sent_traces and got[0] not in roots and got[0] & LOW >= bound
    return {
        "gate": used_gate,
        "sent": len(sent),
        "received": len(received),
        "sampled_parent_spans": len(sampled_spans),
        "sampled_parent_stores": sum(
            1 for i in by_kind["sampled"] if i in stores and stores[i].parent.span_id in sampled_spans
        ),
        "unsampled_parent_spans": sum(1 for s in spans if s.context.trace_id in unsampled_traces),
        "unsampled_replies_ok": unsampled_ok,
        "root_spans": len(roots),
        "root_spans_under_bound": sum(1 for t in roots if t & LOW < bound),
        "root_stores_in_trace": root_stores,
        "root_dropped_replies_ok": root_dropped_ok,
    }


if __name__ == "__main__":
    host, port, prefix, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    print(json.dumps(asyncio.run(asyncio.wait_for(main(host, port, prefix, mode == "on"), 100))))
