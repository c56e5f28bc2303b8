"""Building a publish: topic bytes, payload encoding, MQTT 5 properties, packet size (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from energy_messaging._errors import MessageTooLargeError, PayloadEncodeError, TopicValidationError
from energy_messaging._topics import validate_topic
from energy_messaging.mqtt._context import CONTEXT_FIELD

__all__ = [
    "MAX_REMAINING_LENGTH",
    "UserProperties",
    "encode_payload",
    "make_properties",
    "publish_size",
    "too_large",
    "topic_bytes",
]

_PROPERTY_KEYS = {
    "response_topic": "ResponseTopic",
    "correlation_data": "CorrelationData",
    "content_type": "ContentType",
    "message_expiry_interval": "MessageExpiryInterval",
    "payload_format_indicator": "PayloadFormatIndicator",
}

if TYPE_CHECKING:
    import json

_encoder: json.JSONEncoder | None = None  # one instance (json.dumps builds one per call), made on first use
#: MQTT: at most this after the fixed header (as in ``_wire``, which loads with the first connection).
MAX_REMAINING_LENGTH = 268_435_455
_TOPIC_CACHE_LIMIT = 10_000
_topics: dict[str, bytes] = {}


def topic_bytes(topic: object) -> bytes:
    """Validate a topic to publish to and return it UTF-8 encoded (cached per topic).

    Raises:
        TopicValidationError: If the topic is not valid for PUBLISH.
    """
    cached = _topics.get(topic) if type(topic) is str else None
    if cached is None:
        text = validate_topic(topic)
        try:
            cached = text.encode()
        except UnicodeEncodeError as exc:
            raise TopicValidationError(f"The topic {text!r} is not valid UTF-8.", {"topic": text}) from exc
        if len(_topics) >= _TOPIC_CACHE_LIMIT:
            _topics.clear()
        _topics[text] = cached
    return cached


def publish_size(topic: int, payload: int, qos: int, properties: int) -> tuple[int, int]:
    """Return ``(remaining length, whole packet size)`` of a PUBLISH from its parts' byte counts.

    ``properties`` counts the packed MQTT 5 properties with their length prefix (0 on 3.1.1).
    """
    remaining = topic + properties + payload + (4 if qos else 2)
    header = 2 if remaining < 0x80 else 3 if remaining < 0x4000 else 4 if remaining < 0x200000 else 5
    return remaining, header + remaining


def too_large(topic: str, size: int, limit: int, kind: str) -> MessageTooLargeError:
    """The error for a publish of ``size`` bytes above ``limit`` (``kind`` names the limit)."""
    what = "payload" if kind == "max_payload_bytes" else "packet"
    return MessageTooLargeError(
        f"The message to {topic!r} is too large: its {what} has {size} bytes, {kind} allows {limit}; "
        "send less per message (split it, or store the data elsewhere and publish a reference).",
        {"topic": topic, "size": size, "limit": limit, "limit_kind": kind},
    )


def _make_encoder() -> json.JSONEncoder:
    global _encoder  # noqa: PLW0603 - a lazily built constant
    import json  # noqa: PLC0415 - on first publish: keeps `import energy_messaging.mqtt` light

    _encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
    return _encoder


def encode_payload(payload: object, context: dict[str, str] | None) -> bytes:
    """Serialise a payload: bytes as is, str as UTF-8, None as empty, models and JSON values as JSON.

    ``context`` (3.1.1 only) is added to a JSON object as its ``_ctx`` field.

    Raises:
        PayloadEncodeError: If the value cannot be serialised.
    """
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    if payload is None:
        return b""
    dump = getattr(payload, "model_dump", None)
    if dump is not None and callable(dump):
        payload = dump(mode="json")
    if context and isinstance(payload, dict):
        payload = {**payload, CONTEXT_FIELD: context}
    try:
        return (_encoder or _make_encoder()).encode(payload).encode()
    except (TypeError, ValueError) as exc:
        raise PayloadEncodeError(
            f"The payload of type {type(payload).__name__} is not JSON-serialisable: {exc}. "
            "Pass bytes, str, a dict/list of JSON values or a pydantic model."
        ) from exc


class UserProperties:
    """MQTT 5 PUBLISH properties made only of user properties, packed once at the byte level.

    The context a publish carries (``traceparent``, ``x-request-id``) is this; building
    and packing paho's ``Properties`` for it costs about 15 µs per message. It has what
    the QoS 0/1 send path reads of ``Properties``: ``UserProperty`` and ``pack()``.
    """

    __slots__ = ("UserProperty", "_packed")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.UserProperty = pairs
        body = b"".join(b"\x26" + _utf8(key) + _utf8(value) for key, value in pairs)
        self._packed = _varint(len(body)) + body

    def pack(self) -> bytes:
        """The properties as they go on the wire (length prefix included)."""
        return self._packed


def _utf8(text: str) -> bytes:
    data = text.encode()
    if len(data) > 0xFFFF:
        raise TopicValidationError("An MQTT user property is longer than 65,535 bytes.", {"length": len(data)})
    return len(data).to_bytes(2, "big") + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def make_properties(
    properties: Mapping[str, Any] | None, user_properties: list[tuple[str, str]], *, packed: bool = False
) -> Properties | UserProperties | None:
    """Build MQTT 5 PUBLISH properties from snake_case names plus user properties.

    With ``packed`` (a QoS 0/1 publish, which the client encodes itself) and only user
    properties, the result is a pre-packed :class:`UserProperties`; else paho's ``Properties``.
    """
    if not properties and not user_properties:
        return None
    if packed and not properties:
        return UserProperties(user_properties)
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    extra_user: list[tuple[str, str]] = []
    for key, value in (properties or {}).items():
        if key == "user_properties":
            extra_user.extend((str(k), str(v)) for k, v in value)
            continue
        name = _PROPERTY_KEYS.get(key)
        if name is None:
            raise TopicValidationError(
                f"Unknown MQTT 5 property {key!r}; use one of {sorted(_PROPERTY_KEYS)} or 'user_properties'.",
                {"property": key},
            )
        setattr(props, name, value)
    if extra_user or user_properties:
        props.UserProperty = [*extra_user, *user_properties]
    return props
