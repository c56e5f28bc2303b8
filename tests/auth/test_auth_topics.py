"""Tests for energy_auth's topic matching: MQTT wildcard semantics, safe on client input."""

from __future__ import annotations

import pytest
from energy_auth import filter_covers, topic_matches
from energy_auth._topics import is_topic_filter, is_topic_name, strip_share


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("devices/m1/telemetry", "devices/m1/telemetry", True),
        ("devices/+/telemetry", "devices/m1/telemetry", True),
        ("devices/+/telemetry", "devices/m1/status", False),
        ("devices/+", "devices/m1/telemetry", False),
        ("devices/#", "devices/m1/telemetry", True),
        ("devices/#", "devices", True),  # '#' includes the parent level
        ("#", "devices/m1", True),
        ("#", "$SYS/broker/uptime", False),  # wildcards first never match $-topics
        ("+/broker/uptime", "$SYS/broker/uptime", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("devices/+/replies/+", "devices/m1/replies/abc", True),
        ("devices/+/replies/+", "devices/m1/replies", False),
        ("devices//x", "devices//x", True),  # empty levels are levels
        ("devices/m1/telemetry", "devices/+/telemetry", False),  # a name with a wildcard is no name
        ("devices/m1/telemetry", "devices/#", False),
        ("devices/{device_id}/telemetry", "devices/{device_id}/telemetry", True),  # only literal text here
        ("devices/a+/x", "devices/a+/x", False),  # invalid filter
        ("devices/#/x", "devices/a/x", False),
        ("devices/m1", "devices/m1\x00", False),
        ("devices/m1", "", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    """A topic name matches a filter exactly as MQTT 3.1.1/5 §4.7 define it."""
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("allowed", "requested", "expected"),
    [
        ("devices/m1/commands", "devices/m1/commands", True),
        ("devices/m1/commands", "devices/+/commands", False),  # a wildcard cannot widen a literal
        ("devices/m1/commands", "devices/#", False),
        ("devices/m1/commands", "#", False),
        ("devices/+/telemetry", "devices/m1/telemetry", True),
        ("devices/+/telemetry", "devices/+/telemetry", True),
        ("devices/+/telemetry", "devices/#", False),
        ("devices/+/replies/+", "devices/+/replies/#", False),
        ("devices/#", "devices/+/replies/#", True),
        ("devices/#", "devices", True),
        ("#", "$SYS/#", False),
        ("$share/+/devices/+/telemetry", "$share/ingest/devices/m1/telemetry", True),
        ("$share/+/devices/+/telemetry", "$share/ingest/devices/+/telemetry", True),
        ("$share/+/devices/+/telemetry", "devices/+/telemetry", False),
        ("devices/+/telemetry", "$share/ingest/devices/+/telemetry", False),
        ("$share/+/devices/+/telemetry", "$share/+/devices/+/telemetry", False),  # invalid: wildcard group
        ("devices/+/telemetry", "devices/m1/tele+", False),  # invalid requested filter
        ("devices/+/telemetry", "devices/m1/telemetry\udcff", False),  # not UTF-8
    ],
)
def test_filter_covers(allowed: str, requested: str, expected: bool) -> None:
    """A requested subscription is granted only when the allowed filter covers all it can match."""
    assert filter_covers(allowed, requested) is expected


@pytest.mark.parametrize(
    ("value", "name", "filter_"),
    [
        ("a/b", True, True),
        ("a/+", False, True),
        ("a/#", False, True),
        ("a/#/b", False, False),
        ("a/b+", False, False),
        ("$share/g/a/#", False, True),
        ("$share//a", False, False),
        ("$share/g", False, False),
        ("x" * 65536, False, False),
        (None, False, False),
        (b"a/b", False, False),
    ],
)
def test_topic_validity(value: object, name: bool, filter_: bool) -> None:
    """Names have no wildcards, filters use them as whole levels; non-strings and oversize are neither."""
    assert is_topic_name(value) is name
    assert is_topic_filter(value) is filter_


def test_strip_share() -> None:
    """The shared-subscription prefix is removed, other filters are unchanged."""
    assert strip_share("$share/g/devices/+/x") == "devices/+/x"
    assert strip_share("devices/+/x") == "devices/+/x"
