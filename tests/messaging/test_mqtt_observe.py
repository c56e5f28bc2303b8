"""The pure parts of the MQTT spans and metrics: topic templates, pre-packed user properties, the option checks."""

from __future__ import annotations

import pytest
from energy_messaging import MQTTManager, MQTTOptionsError
from energy_messaging._topics import TopicPattern
from energy_messaging.mqtt._observe import DEAD_LETTER_REASONS, Observer, topic_template
from energy_messaging.mqtt._payload import UserProperties, make_properties
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@pytest.mark.parametrize(
    ("topic", "templates", "expected"),
    [
        ("devices/meter-042/commands", (), "devices/+/commands"),
        ("devices/meter-042/replies/3fa2c1d9e8b7", (), "devices/+/replies/+"),
        ("ops/dead-letters", (), "ops/dead-letters"),
        ("devices/kitchen/commands", ("devices/{device_id}/commands",), "devices/+/commands"),
        ("devices/kitchen/replies/abc", ("devices/{device_id}/replies/#",), "devices/+/replies/#"),
        ("devices/kitchen/status", ("devices/{device_id}/commands",), "devices/kitchen/status"),
    ],
)
def test_topic_template_names_topics_without_device_ids(topic: str, templates: tuple[str, ...], expected: str) -> None:
    """A matching template gives its filter; otherwise id-like levels (with a digit) become ``+``."""
    assert topic_template(topic, [TopicPattern(item) for item in templates]) == expected


def test_observer_templates_many_device_ids_into_one_name() -> None:
    """Ten thousand device ids give one template, cached in a bounded dict."""
    observer = Observer(None)
    names = {observer.template(f"devices/m-{index}/commands") for index in range(10_000)}
    assert names == {"devices/+/commands"}
    assert observer.tags("devices/+/commands", 1) is observer.tags("devices/+/commands", 1)


class _Sink:
    """A MetricsSink that records calls (the Protocol is ours; energy-monitoring's registry is tested elsewhere)."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, tuple[tuple[str, object], ...]], float] = {}
        self.gauges: dict[str, float] = {}

    def increment_counter(self, name: str, value: float = 1, tags: dict[str, object] | None = None) -> None:
        key = (name, tuple(sorted((tags or {}).items())))
        self.counters[key] = self.counters.get(key, 0) + value

    def set_gauge(self, name: str, value: float, tags: dict[str, object] | None = None) -> None:
        self.gauges[name] = value

    def observe_duration(self, name: str, seconds: float, tags: dict[str, object] | None = None) -> None:
        """Unused here."""


def test_observer_presets_counters_and_counts_reconnects_once() -> None:
    """Dead letters start at 0 for every reason; reconnects are added by difference, not re-counted per sample."""
    sink = _Sink()
    observer = Observer(sink)
    for reason in DEAD_LETTER_REASONS:
        assert sink.counters[("mqtt.dead_letters", (("reason", reason),))] == 0
    for reconnects in (0, 2, 2, 3):
        observer.sample(connected=True, reconnects=reconnects, queued=1, held=0, inflight=2, window=20, buffered=0)
    assert sink.counters[("mqtt.reconnects", ())] == 3
    assert sink.gauges["mqtt.connected"] == 1
    assert sink.gauges["mqtt.inflight.limit"] == 20


@given(
    st.lists(
        st.tuples(st.text(max_size=40), st.text(max_size=300)),
        min_size=1,
        max_size=5,
    )
)
def test_user_properties_pack_exactly_like_paho(pairs: list[tuple[str, str]]) -> None:
    """The pre-packed user properties are byte for byte what paho's Properties packs."""
    paho = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    paho.UserProperty = pairs
    ours = make_properties(None, pairs, packed=True)
    assert isinstance(ours, UserProperties)
    assert ours.pack() == paho.pack()  # type: ignore[no-untyped-call]
    assert ours.UserProperty == pairs


def test_other_properties_and_qos_2_still_use_paho() -> None:
    """Named properties, or a publish paho encodes itself (QoS 2), get paho's Properties."""
    assert isinstance(make_properties({"content_type": "a"}, [("k", "v")], packed=True), Properties)
    assert isinstance(make_properties(None, [("k", "v")], packed=False), Properties)
    assert make_properties(None, [], packed=True) is None


def test_observability_options_are_checked() -> None:
    """A metrics object without the MetricsSink methods, or templates that are not a tuple of filters, are refused."""
    with pytest.raises(MQTTOptionsError, match="metrics"):
        MQTTManager("127.0.0.1", 1883, metrics=object())  # type: ignore[arg-type]
    with pytest.raises(MQTTOptionsError, match="topic_templates"):
        MQTTManager("127.0.0.1", 1883, topic_templates=["a/b"])  # type: ignore[arg-type]
    with pytest.raises(MQTTOptionsError):
        MQTTManager("127.0.0.1", 1883, topic_templates=("a/#/b",))
