"""Topic building refuses injection; filters and named parameters route correctly."""

from __future__ import annotations

import pytest
from energy_common.exceptions import ValidationError
from energy_messaging.devices import DeviceTopics
from energy_messaging.errors import TopicValidationError
from energy_messaging.topics import (
    TopicPattern,
    build_topic,
    topic_level,
    validate_topic,
    validate_topic_filter,
)


@pytest.mark.parametrize("bad", ["+", "#", "a/b", "x\x00y", "", "dev+ice", "dev#"])
def test_topic_level_refuses_injection(bad: str) -> None:
    """A level with a wildcard, a separator or NUL (or empty) is refused with a typed error."""
    with pytest.raises(TopicValidationError) as info:
        topic_level(bad, name="device_id")
    assert info.value.error_code == "TOPIC_INVALID"
    assert isinstance(info.value, ValidationError)
    assert info.value.details["field"] == "device_id"


def test_topic_level_refuses_non_strings() -> None:
    """A non-string id is refused rather than formatted into a topic."""
    with pytest.raises(TopicValidationError):
        topic_level(42)


@pytest.mark.parametrize("bad", ["+", "#", "a/b", "x\x00"])
def test_device_topics_refuse_injected_ids(bad: str) -> None:
    """Every device topic builder checks the device id."""
    topics = DeviceTopics("devices")
    for build in (topics.telemetry, topics.status, topics.commands):
        with pytest.raises(TopicValidationError):
            build(bad)


def test_build_topic_joins_checked_levels() -> None:
    """A trusted prefix may contain '/', levels are checked and joined."""
    assert build_topic("site/devices", "s1", "telemetry") == "site/devices/s1/telemetry"
    assert DeviceTopics("r").replies("s1", "inst") == "r/s1/replies/inst"


@pytest.mark.parametrize("bad", ["", "a/+/b", "a/#", "a\x00"])
def test_validate_topic_refuses_wildcards(bad: str) -> None:
    """A publish topic must be concrete."""
    with pytest.raises(TopicValidationError):
        validate_topic(bad)


def test_validate_topic_refuses_oversized() -> None:
    """Topics longer than the MQTT limit are refused."""
    with pytest.raises(TopicValidationError):
        validate_topic("a" * 70_000)


@pytest.mark.parametrize("bad", ["a/#/b", "a/b+", "a/#x", "$share//x", "$share/g", "$share/g+/x", "x\x00"])
def test_validate_topic_filter_refuses_malformed(bad: str) -> None:
    """Wildcards must fill whole levels, '#' must be last, shared filters need group and filter."""
    with pytest.raises(TopicValidationError):
        validate_topic_filter(bad)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("a/b", "a/b", {}),
        ("a/b", "a/c", None),
        ("a/+/c", "a/x/c", {}),
        ("a/+/c", "a/x/y/c", None),
        ("a/#", "a", {}),
        ("a/#", "a/b/c", {}),
        ("#", "$SYS/x", None),
        ("+/x", "$SYS/x", None),
        ("$SYS/#", "$SYS/x", {}),
        ("devices/{device_id}/telemetry", "devices/s1/telemetry", {"device_id": "s1"}),
        ("devices/{device_id}/telemetry", "devices/s1/status", None),
        ("$share/g/devices/{device_id}/#", "devices/s2/a/b", {"device_id": "s2"}),
    ],
)
def test_pattern_matching(pattern: str, topic: str, expected: dict[str, str] | None) -> None:
    """Filters follow MQTT matching rules and return named parameters."""
    assert TopicPattern(pattern).match(topic) == expected


def test_pattern_filters() -> None:
    """Named levels subscribe as '+', the share prefix stays in the broker filter only."""
    pattern = TopicPattern("$share/grp/devices/{device_id}/telemetry")
    assert pattern.mqtt_filter == "$share/grp/devices/+/telemetry"
    assert pattern.match_filter == "devices/+/telemetry"
    assert pattern.group == "grp"
