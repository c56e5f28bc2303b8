"""Injection-safe topic building and wildcard matching (pure functions, no IO).

MQTT topic filters use ``+`` (one level) and ``#`` (all remaining levels); a topic
level that came from outside (a device id, a command name) must therefore never
contain ``+``, ``#``, ``/`` or NUL, or a device called ``+`` could read every other
device's commands. :func:`topic_level` refuses such values and :func:`build_topic`
joins only checked levels.

Filters given to :meth:`MQTTManager.subscribe` may name whole levels as parameters,
``devices/{device_id}/telemetry``, which subscribe as ``+`` and are returned to the
handler in ``message.params``; a ``$share/<group>/`` prefix makes it a shared
subscription.

Example:
    >>> build_topic("devices", "sensor001", "telemetry")
    'devices/sensor001/telemetry'
    >>> TopicPattern("$share/ingest/devices/{device_id}/telemetry").match("devices/s1/telemetry")
    {'device_id': 's1'}
"""

from __future__ import annotations

import re

from energy_messaging._errors import TopicValidationError

__all__ = [
    "MAX_TOPIC_BYTES",
    "TopicPattern",
    "build_topic",
    "topic_level",
    "validate_topic",
    "validate_topic_filter",
]

#: MQTT limits a topic to 65,535 bytes of UTF-8.
MAX_TOPIC_BYTES = 65_535

_FORBIDDEN_IN_LEVEL = ("+", "#", "/", "\x00")
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def _check_size(value: str, what: str) -> None:
    if len(value.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        raise TopicValidationError(f"The {what} is longer than {MAX_TOPIC_BYTES} bytes.", {"length": len(value)})


def topic_level(value: object, *, name: str = "topic level") -> str:
    """Check one topic level that may come from outside (a device id, a command name).

    Args:
        value: The level; must be a non-empty string without ``+``, ``#``, ``/`` or NUL.
        name: What the value is, for the error message (e.g. ``"device_id"``).

    Returns:
        The value, unchanged.

    Raises:
        TopicValidationError: If the value is empty, not a string, or contains a
            wildcard, a level separator or NUL.
    """
    if not isinstance(value, str) or not value:
        raise TopicValidationError(f"The {name} must be a non-empty string.", {"field": name})
    for char in _FORBIDDEN_IN_LEVEL:
        if char in value:
            shown = "NUL" if char == "\x00" else repr(char)
            raise TopicValidationError(
                f"The {name} {value!r} contains {shown}, which is not allowed in an MQTT topic level.",
                {"field": name, "forbidden": shown},
            )
    _check_size(value, name)
    return value


def build_topic(prefix: str, *levels: str) -> str:
    """Join a trusted prefix (may contain ``/``) and checked levels into a topic.

    Args:
        prefix: The configured root, e.g. ``"devices"`` or ``"site-1/devices"``.
        *levels: Levels checked with :func:`topic_level`.

    Raises:
        TopicValidationError: If the prefix or a level is not allowed.
    """
    validate_topic(prefix)
    return "/".join((prefix, *(topic_level(level) for level in levels)))


def validate_topic(topic: object) -> str:
    """Check a topic to publish to: non-empty, no wildcards, no NUL.

    Raises:
        TopicValidationError: If the topic is not valid for PUBLISH.
    """
    if not isinstance(topic, str) or not topic:
        raise TopicValidationError("The topic must be a non-empty string.", {"field": "topic"})
    if "+" in topic or "#" in topic or "\x00" in topic:
        raise TopicValidationError(
            f"The topic {topic!r} contains a wildcard or NUL; publish to a concrete topic.", {"topic": topic}
        )
    _check_size(topic, "topic")
    return topic


def _split_shared(topic_filter: str) -> tuple[str | None, str]:
    if not topic_filter.startswith("$share/"):
        return None, topic_filter
    parts = topic_filter.split("/", 2)
    if len(parts) < 3 or not parts[1] or not parts[2] or any(c in parts[1] for c in "+#\x00"):
        raise TopicValidationError(
            f"The shared subscription {topic_filter!r} must look like $share/<group>/<filter>.",
            {"topic_filter": topic_filter},
        )
    return parts[1], parts[2]


def validate_topic_filter(topic_filter: object) -> str:
    """Check a subscription filter (``+`` and ``#`` only as whole levels, ``#`` last).

    Raises:
        TopicValidationError: If the filter is malformed.
    """
    if not isinstance(topic_filter, str) or not topic_filter:
        raise TopicValidationError("The topic filter must be a non-empty string.", {"field": "topic_filter"})
    if "\x00" in topic_filter:
        raise TopicValidationError("The topic filter contains NUL.", {"topic_filter": topic_filter})
    _check_size(topic_filter, "topic filter")
    _, body = _split_shared(topic_filter)
    levels = body.split("/")
    for index, level in enumerate(levels):
        if level == "#" and index != len(levels) - 1:
            raise TopicValidationError(f"'#' must be the last level of {topic_filter!r}.", {"topic_filter": body})
        if level not in {"+", "#"} and ("+" in level or "#" in level):
            raise TopicValidationError(
                f"A wildcard must fill a whole level in {topic_filter!r}.", {"topic_filter": topic_filter}
            )
    return topic_filter


class TopicPattern:
    """A compiled subscription filter with optional named parameters.

    Args:
        pattern: A filter such as ``devices/+/status``, ``devices/#``,
            ``devices/{device_id}/telemetry`` or ``$share/grp/devices/{device_id}/#``.

    Attributes:
        mqtt_filter: The filter sent to the broker (parameters replaced by ``+``).
        match_filter: The filter messages are matched against (without ``$share``).
        group: The shared-subscription group, or None.
    """

    __slots__ = ("_exact", "_levels", "_multi", "_names", "group", "match_filter", "mqtt_filter")

    def __init__(self, pattern: str) -> None:
        if not isinstance(pattern, str) or not pattern:
            raise TopicValidationError("The topic filter must be a non-empty string.", {"field": "topic_filter"})
        group, body = _split_shared(pattern)
        names: list[tuple[int, str]] = []
        levels: list[str] = []
        for index, level in enumerate(body.split("/")):
            param = _PARAM.fullmatch(level)
            if param:
                names.append((index, param.group(1)))
                levels.append("+")
            else:
                levels.append(level)
        self.match_filter = "/".join(levels)
        self.mqtt_filter = self.match_filter if group is None else f"$share/{group}/{self.match_filter}"
        validate_topic_filter(self.mqtt_filter)
        self.group = group
        self._names = tuple(names)
        self._multi = levels[-1] == "#"
        self._levels = tuple(levels[:-1] if self._multi else levels)
        self._exact = "+" not in levels and not self._multi

    def match(self, topic: str) -> dict[str, str] | None:
        """Return the named parameters if ``topic`` matches, else None."""
        if self._exact:
            return {} if topic == self.match_filter else None
        parts = topic.split("/")
        count = len(self._levels)
        if len(parts) < count or (not self._multi and len(parts) != count):
            return None
        # Wildcards in the first level never match topics starting with '$' (MQTT 4.7.2).
        if topic.startswith("$") and (count == 0 or self._levels[0] == "+"):
            return None
        for want, got in zip(self._levels, parts, strict=False):
            if want not in ("+", got):
                return None
        return {name: parts[index] for index, name in self._names}

    def __repr__(self) -> str:
        return f"TopicPattern({self.mqtt_filter!r})"
