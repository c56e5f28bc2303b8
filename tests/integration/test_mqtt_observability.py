"""MQTT spans and built-in metrics of energy-messaging, recorded through energy-monitoring, on the real Mosquitto."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from energy_common.context import correlation_scope
from energy_messaging import DeviceManager, MQTTManager, MQTTMessage
from energy_messaging.mqtt._observe import topic_template
from energy_messaging.simulator import DeviceSimulator
from energy_monitoring.metrics import MetricsRegistry
from energy_monitoring.testing import InMemorySpanExporter, capture_spans
from energy_monitoring.tracing import get_tracer
from opentelemetry.trace import SpanKind, StatusCode

from tests.conftest import metric_value, wait_for

pytestmark = pytest.mark.mqtt

PROTOCOLS = ["5", "3.1.1"]


@pytest.fixture
def spans() -> Any:
    """The session's in-memory span exporter, emptied around the test."""
    with capture_spans() as exporter:
        yield exporter


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_publish_and_process_spans_form_one_trace(
    mqtt_broker: Any, mqtt_topic_prefix: str, spans: InMemorySpanExporter, protocol: str
) -> None:
    """A publish is a PRODUCER span named by the template; the handler's CONSUMER span is its child, on 5 and 3.1.1."""
    seen: list[MQTTMessage] = []
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port, protocol=protocol) as mqtt:  # type: ignore[arg-type]

        @mqtt.on(f"{mqtt_topic_prefix}/{{device_id}}/telemetry")
        async def handler(message: MQTTMessage) -> None:
            with get_tracer("test").start_span("store"):
                seen.append(message)

        await asyncio.sleep(0.2)
        with correlation_scope("req-obs-1"), get_tracer("test").start_span("request") as request:
            await mqtt.publish(f"{mqtt_topic_prefix}/meter-042/telemetry", {"power_w": 1.5}, qos=1)
        await wait_for(lambda: seen)
        await wait_for(lambda: any(s.name == "store" for s in spans.get_finished_spans()))
    finished = spans.get_finished_spans()
    template = topic_template(f"{mqtt_topic_prefix}/+/telemetry")
    (producer,) = [s for s in finished if s.kind is SpanKind.PRODUCER]
    (consumer,) = [s for s in finished if s.kind is SpanKind.CONSUMER]
    (store,) = [s for s in finished if s.name == "store"]
    assert producer.name == f"publish {template}"
    assert consumer.name == f"process {template}"
    attrs = dict(producer.attributes or {})
    assert attrs["messaging.system"] == "mqtt"
    assert attrs["messaging.destination.name"] == f"{mqtt_topic_prefix}/meter-042/telemetry"
    assert attrs["messaging.operation.type"] == "send"
    assert attrs["messaging.mqtt.qos"] == 1
    assert attrs["messaging.message.body.size"] > 0
    assert producer.parent is not None
    assert producer.parent.span_id == request.get_span_context().span_id
    # The context the message carried is the producer span's: the consumer is its child.
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.context.trace_id == producer.context.trace_id == request.get_span_context().trace_id
    assert store.parent is not None
    assert store.parent.span_id == consumer.context.span_id
    assert dict(consumer.attributes or {})["correlation_id"] == "req-obs-1"
    assert seen[0].correlation_id == "req-obs-1"
    assert seen[0].payload == {"power_w": 1.5}


async def test_handler_error_and_dead_letter_spans_have_error_status(
    mqtt_broker: Any, mqtt_topic_prefix: str, spans: InMemorySpanExporter
) -> None:
    """A handler that raises marks its span as an error with an exception event; an undecodable message gets an error span."""
    letters: list[Any] = []
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port, on_dead_letter=letters.append) as mqtt:

        @mqtt.on(f"{mqtt_topic_prefix}/boom")
        async def boom(message: MQTTMessage) -> None:
            raise RuntimeError("meter said no")

        @mqtt.on(f"{mqtt_topic_prefix}/json")
        async def never(message: MQTTMessage) -> None:
            raise AssertionError("not reached")

        await asyncio.sleep(0.2)
        await mqtt.publish(f"{mqtt_topic_prefix}/boom", {"a": 1})
        await mqtt.publish(f"{mqtt_topic_prefix}/json", b"{not json")
        await wait_for(lambda: len(letters) == 2)
    consumers = {s.name: s for s in spans.get_finished_spans() if s.kind is SpanKind.CONSUMER}
    failed = consumers[f"process {topic_template(mqtt_topic_prefix)}/boom"]
    assert failed.status.status_code is StatusCode.ERROR
    assert "RuntimeError: meter said no" in (failed.status.description or "")
    assert [event.name for event in failed.events] == ["exception"]
    undecodable = consumers[f"process {topic_template(mqtt_topic_prefix)}/json"]
    assert undecodable.status.status_code is StatusCode.ERROR
    assert dict(undecodable.attributes or {})["energy.dead_letter.reason"] == "decode_error"
    assert undecodable.events[0].name == "exception"


async def test_metrics_are_templated_preset_and_within_the_cardinality_guard(
    mqtt_broker: Any, mqtt_topic_prefix: str
) -> None:
    """300 devices give one label set per template; dead-letter reasons start at 0; gauges report the connection."""
    registry = MetricsRegistry("svc", max_label_sets=50)
    received: list[str] = []
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port, metrics=registry) as mqtt:

        @mqtt.on(f"{mqtt_topic_prefix}/{{device_id}}/telemetry")
        async def handler(message: MQTTMessage) -> None:
            received.append(message.params["device_id"])
            if message.params["device_id"] == "m-13":
                raise ValueError("unlucky")

        await asyncio.sleep(0.2)
        template = topic_template(f"{mqtt_topic_prefix}/+/telemetry")
        assert metric_value(registry, "svc_mqtt_dead_letters_total", reason="handler_error") == 0
        assert metric_value(registry, "svc_mqtt_messages_received_total", topic=template, qos="1") == 0
        for index in range(300):
            await mqtt.publish(f"{mqtt_topic_prefix}/m-{index}/telemetry", {"i": index}, wait=False)
        await mqtt.flush()
        await wait_for(lambda: len(received) == 300)
        await wait_for(lambda: metric_value(registry, "svc_mqtt_connected") == 1)
        assert metric_value(registry, "svc_mqtt_reconnects_total") == 0
        assert metric_value(registry, "svc_mqtt_inflight_limit") == mqtt.state.max_inflight
    assert metric_value(registry, "svc_mqtt_messages_published_total", topic=template, qos="1") == 300
    assert metric_value(registry, "svc_mqtt_messages_received_total", topic=template, qos="1") == 300
    assert metric_value(registry, "svc_mqtt_handler_duration_seconds_count", topic=template) == 300
    assert metric_value(registry, "svc_mqtt_handler_errors_total", topic=template) == 1
    assert metric_value(registry, "svc_mqtt_dead_letters_total", reason="handler_error") == 1
    assert metric_value(registry, "svc_mqtt_dead_letters_total", reason="decode_error") == 0
    assert metric_value(registry, "svc_mqtt_connected") == 0  # the last sample, at shutdown
    assert metric_value(registry, "svc_mqtt_inbound_queued") == 0
    for family in registry._families.values():  # the cardinality guard: nothing overflowed
        assert not family.overflowed, family.name
        assert family.label_set_count <= 6, family.name


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_simulator_continues_the_command_trace(
    mqtt_broker: Any, mqtt_topic_prefix: str, spans: InMemorySpanExporter, protocol: str
) -> None:
    """A command's publish, the simulator's handling, its reply and the reply's handling share the caller's trace."""
    root = f"{mqtt_topic_prefix}/dev"
    async with (
        MQTTManager(mqtt_broker.host, mqtt_broker.port, protocol=protocol) as mqtt,  # type: ignore[arg-type]
        DeviceSimulator("sim-7", mqtt_broker.host, mqtt_broker.port, topic_root=root, interval=None, protocol=protocol),
    ):
        devices = DeviceManager(mqtt, topic_root=root)
        await devices.start()
        await devices.register_device("sim-7", "meter")
        with get_tracer("test").start_span("api") as api:
            result = await devices.send_command("sim-7", "ping", timeout=10)
    assert result == {"pong": True}
    trace_id = api.get_span_context().trace_id
    ours = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    names = [(s.kind, s.name) for s in ours]
    commands = topic_template(f"{root}/sim-7/commands")  # the prefix's random hex level is templated too
    assert commands.endswith("/dev/+/commands")
    assert (SpanKind.PRODUCER, f"publish {commands}") in names
    assert (SpanKind.CONSUMER, f"process {commands}") in names  # the simulator handling it
    replies = [s for s in ours if s.name.startswith("publish") and "/replies/" in s.name]
    assert replies, names  # the reply, published under the simulator's span
    assert any(s.kind is SpanKind.CONSUMER and "/replies/" in s.name for s in ours), names
