"""Topic building and matching: refuse injection, route wildcards (see :mod:`energy_messaging._topics`)."""

from energy_messaging._topics import (
    MAX_TOPIC_BYTES,
    TopicPattern,
    build_topic,
    topic_level,
    validate_topic,
    validate_topic_filter,
)
from energy_messaging.devices._protocol import DeviceTopics

__all__ = [
    "MAX_TOPIC_BYTES",
    "DeviceTopics",
    "TopicPattern",
    "build_topic",
    "topic_level",
    "validate_topic",
    "validate_topic_filter",
]
