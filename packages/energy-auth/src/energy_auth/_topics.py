"""MQTT topic matching for access checks: pure functions, safe on client-supplied input.

A *topic name* (what is published) has no wildcards; a *topic filter* (what is
subscribed) may use ``+`` (one whole level) and ``#`` (the whole rest, last level only).
Following MQTT 3.1.1 §4.7.2 / MQTT 5 §4.7.2, a filter starting with a wildcard does not
match topics starting with ``$`` (``#`` does not cover ``$SYS/...``). A shared subscription
``$share/<group>/<filter>`` is a filter whose first two levels are ``$share`` and the group.
"""

from __future__ import annotations

__all__ = [
    "MAX_TOPIC_BYTES",
    "filter_covers",
    "is_topic_filter",
    "is_topic_name",
    "is_topic_pattern",
    "strip_share",
    "topic_matches",
]

MAX_TOPIC_BYTES = 65535


def _encoded_ok(topic: object) -> bool:
    if not isinstance(topic, str) or not topic or "\x00" in topic:
        return False
    try:
        return len(topic.encode("utf-8")) <= MAX_TOPIC_BYTES
    except UnicodeEncodeError:  # a lone surrogate: not UTF-8, so not a topic
        return False


def is_topic_name(topic: object) -> bool:
    """Tell whether ``topic`` is a valid topic name to publish to (no wildcards, not ``$share/``)."""
    if not isinstance(topic, str) or not _encoded_ok(topic):
        return False
    return "+" not in topic and "#" not in topic and not topic.startswith("$share/")


def is_topic_filter(topic: object) -> bool:
    """Tell whether ``topic`` is a valid topic filter (wildcards whole levels, ``#`` last).

    ``$share/<group>/<filter>`` is valid when the group is non-empty and wildcard-free and
    the filter is valid.
    """
    return _valid_filter(topic, group_wildcard=False)


def _valid_filter(topic: object, *, group_wildcard: bool) -> bool:
    # group_wildcard: a policy pattern may say '$share/+/...' for "any group".
    if not isinstance(topic, str) or not _encoded_ok(topic):
        return False
    levels = topic.split("/")
    if levels[0] == "$share":
        group = levels[1] if len(levels) >= 3 else ""
        if not group or (("+" in group or "#" in group) and not (group_wildcard and group == "+")):
            return False
        levels = levels[2:]
    for index, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and (level != "#" or index != len(levels) - 1)):
            return False
    return True


def is_topic_pattern(topic: object) -> bool:
    """Tell whether ``topic`` is a valid policy pattern: a filter, where ``$share/+/`` means any group."""
    return _valid_filter(topic, group_wildcard=True)


def strip_share(topic_filter: str) -> str:
    """Return the filter without a ``$share/<group>/`` prefix (what the broker matches on)."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else ""
    return topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Tell whether the topic *name* ``topic`` matches ``topic_filter`` (MQTT semantics).

    Returns ``False`` for an invalid name or filter.

    Example:
        >>> topic_matches("devices/+/telemetry", "devices/m1/telemetry"), topic_matches("#", "$SYS/uptime")
        (True, False)
    """
    if not is_topic_name(topic) or not is_topic_filter(topic_filter):
        return False
    return _covers(topic_filter.split("/"), topic.split("/"))


def filter_covers(allowed: str, requested: str) -> bool:
    """Tell whether every topic ``requested`` can match is also matched by ``allowed``.

    This is the check for a SUBSCRIBE: ``devices/m1/commands`` does not cover
    ``devices/+/commands`` nor ``devices/#``, while ``devices/+/replies/#`` covers
    ``devices/m1/replies/+``. A ``$share/<group>/`` prefix is compared level by level, so
    ``$share/+/devices/+/telemetry`` covers ``$share/ingest/devices/m1/telemetry``.
    Returns ``False`` for an invalid filter.
    """
    if not is_topic_filter(requested) or not _valid_filter(allowed, group_wildcard=True):
        return False
    return _covers(allowed.split("/"), requested.split("/"))


def _covers(allowed: list[str], requested: list[str]) -> bool:
    # '+' and '#' in `requested` are wildcards only where `allowed` has a wildcard too: a
    # literal allowed level never matches a requested '+', so a client cannot widen its
    # rights by sending wildcards.
    if requested and requested[0].startswith("$") and allowed and allowed[0] in ("+", "#"):
        return False
    for index, level in enumerate(allowed):
        if level == "#":
            return True  # '#' also matches the parent level itself ("a/#" covers "a")
        if index >= len(requested):
            return False
        wanted = requested[index]
        if wanted == "#":
            return False  # only an allowed '#' covers a requested '#'
        if level == "+":
            continue
        if level != wanted:
            return False
    return len(requested) == len(allowed)
