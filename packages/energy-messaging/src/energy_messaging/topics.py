"""Topic building and matching: refuse injection, route wildcards (see :mod:`energy_messaging._topics`).

The device topic layout, ``DeviceTopics``, is in :mod:`energy_messaging.devices`.
"""

from energy_messaging._topics import (
    MAX_TOPIC_BYTES,
    TopicPattern,
    build_topic,
    topic_level,
    validate_topic,
    validate_topic_filter,
)

__all__ = [
    "MAX_TOPIC_BYTES",
    "TopicPattern",
    "build_topic",
    "topic_level",
    "validate_topic",
    "validate_topic_filter",
]
