"""Routing: stable subscription identifiers are a fast path; topic matching is the fallback that never loses a message."""

from __future__ import annotations

import pytest
from energy_messaging.mqtt import MQTTMessage
from energy_messaging.mqtt._router import Router, Subscription, filter_identifier
from energy_messaging.topics import TopicPattern


async def handler(message: MQTTMessage) -> None:
    """A handler (never called here)."""


def sub(topic_filter: str, qos: int = 1) -> Subscription:
    """A subscription of ``handler`` to ``topic_filter``."""
    return Subscription(TopicPattern(topic_filter), handler, qos)


@pytest.fixture
def router() -> Router:
    """A router holding three overlapping filters."""
    routes = Router()
    for topic_filter in ("devices/+/telemetry", "devices/#", "devices/{device_id}/status"):
        routes.add(sub(topic_filter))
    return routes


def test_identifiers_are_derived_from_the_filter() -> None:
    """A filter gets the same identifier in every router, whatever the registration order."""
    first, second = Router(), Router()
    for topic_filter in ("a/+", "b/#", "c"):
        first.add(sub(topic_filter))
    for topic_filter in ("c", "a/+", "b/#"):
        second.add(sub(topic_filter))
    assert {k: v.identifier for k, v in first.filters.items()} == {k: v.identifier for k, v in second.filters.items()}
    assert first.filters["a/+"].identifier == filter_identifier("a/+")
    assert all(1 <= entry.identifier <= 268_435_455 for entry in first.filters.values())


def test_colliding_identifiers_are_probed_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two filters whose identifiers collide still get distinct ones, and each routes to its own handlers."""
    import energy_messaging.mqtt._router as module

    monkeypatch.setattr(module, "filter_identifier", lambda text, attempt=0: 7 + attempt)
    routes = Router()
    routes.add(sub("x/1"))
    routes.add(sub("x/2"))
    assert [routes.filters["x/1"].identifier, routes.filters["x/2"].identifier] == [7, 8]
    assert [s.pattern.mqtt_filter for s, _ in routes.routes("x/2", [8])] == ["x/2"]


def test_known_identifier_selects_only_its_filter(router: Router) -> None:
    """With the broker's identifier, only that filter's handlers get the message (no duplicate per overlap)."""
    ident = router.filters["devices/#"].identifier
    assert [s.pattern.mqtt_filter for s, _ in router.routes("devices/m1/telemetry", [ident])] == ["devices/#"]


def test_unknown_identifier_falls_back_to_topic_matching(router: Router) -> None:
    """An identifier of an earlier run (unknown here) routes by topic, to every matching filter."""
    found = router.routes("devices/m1/status", [123_456_789])
    assert [s.pattern.mqtt_filter for s, _ in found] == ["devices/#", "devices/+/status"]
    assert found[1][1] == {"device_id": "m1"}


def test_identifier_of_a_filter_that_does_not_match_falls_back(router: Router) -> None:
    """A known identifier whose filter does not match the topic (reused by another filter) routes by topic."""
    status = router.filters["devices/+/status"].identifier
    assert [s.pattern.mqtt_filter for s, _ in router.routes("devices/m1/telemetry", [status])] == [
        "devices/+/telemetry",
        "devices/#",
    ]


def test_unknown_and_known_identifiers_together_use_the_known(router: Router) -> None:
    """Stale identifiers next to a known, matching one are ignored."""
    ident = router.filters["devices/+/telemetry"].identifier
    assert [s.pattern.mqtt_filter for s, _ in router.routes("devices/m/telemetry", [99, ident])] == [
        "devices/+/telemetry"
    ]


def test_no_matching_filter_means_no_handler(router: Router) -> None:
    """A topic no filter matches has no routes, with or without identifiers."""
    assert router.routes("other/topic", None) == ()
    assert router.routes("other/topic", [router.filters["devices/#"].identifier]) == ()


def test_changes_bump_the_version_and_call_the_listener() -> None:
    """Adding or removing a subscription bumps ``version``, clears the cache and calls ``on_change``."""
    routes = Router()
    calls: list[int] = []
    routes.on_change = lambda: calls.append(routes.version)
    first = sub("a/b")
    routes.add(first)
    assert routes.routes("a/b", None)
    routes.remove(first)
    assert routes.routes("a/b", None) == ()
    assert calls == [1, 2]
    assert routes.remove(first) is None  # removing twice is a no-op


def test_qos_rise_is_reported_as_a_change() -> None:
    """A second handler asking for a higher QoS marks the broker filter changed (it must be re-subscribed)."""
    routes = Router()
    assert routes.add(sub("q", 0))[1] is True
    assert routes.add(sub("q", 0))[1] is False
    entry, changed = routes.add(sub("q", 2))
    assert changed
    assert entry.qos == 2
