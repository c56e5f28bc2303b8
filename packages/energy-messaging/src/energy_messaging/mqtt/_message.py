"""The message object handlers receive, and the dead-letter record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DeadLetter", "MQTTMessage"]

_PROPERTY_NAMES = {
    "ResponseTopic": "response_topic",
    "CorrelationData": "correlation_data",
    "ContentType": "content_type",
    "MessageExpiryInterval": "message_expiry_interval",
    "PayloadFormatIndicator": "payload_format_indicator",
    "SubscriptionIdentifier": "subscription_identifier",
    "UserProperty": "user_properties",
}


def properties_to_dict(props: object) -> dict[str, Any]:
    """Convert paho MQTT 5 properties into a plain dict with snake_case names."""
    if props is None:
        return {}
    out: dict[str, Any] = {}
    for paho_name, name in _PROPERTY_NAMES.items():
        value = getattr(props, paho_name, None)
        if value is not None:
            out[name] = value
    return out


class MQTTMessage:
    """A message as a handler sees it.

    Attributes:
        topic: The topic it was published to.
        payload: The decoded payload: the JSON value (with the ``_ctx`` context field
            removed), a validated pydantic model when the subscription has a ``model``,
            or the raw bytes when it was made with ``decode=False``.
        raw: The payload bytes as received.
        qos: The QoS it was delivered with.
        retain: Whether the broker sent it from its retained store.
        duplicate: Whether the broker flagged it as a redelivery (DUP).
        params: Values of the named levels of the filter, e.g. ``{"device_id": "s1"}``.
        correlation_id: The correlation id it carried (MQTT 5 user property or the
            ``_ctx`` field on 3.1.1), also current in ``energy_common.context`` while the
            handler runs.
        trace_context: The propagation carrier (``traceparent``, ``tracestate``...).
    """

    __slots__ = (
        "_props",
        "correlation_id",
        "duplicate",
        "params",
        "payload",
        "qos",
        "raw",
        "retain",
        "topic",
        "trace_context",
    )

    def __init__(
        self,
        topic: str,
        payload: Any,
        raw: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        duplicate: bool = False,
        params: dict[str, str] | None = None,
        correlation_id: str | None = None,
        trace_context: dict[str, str] | None = None,
        properties: object = None,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.raw = raw
        self.qos = qos
        self.retain = retain
        self.duplicate = duplicate
        self.params = params if params is not None else {}
        self.correlation_id = correlation_id
        self.trace_context = trace_context if trace_context is not None else {}
        self._props = properties

    @property
    def properties(self) -> dict[str, Any]:
        """MQTT 5 properties as a dict (``response_topic``, ``correlation_data``, ``user_properties``...)."""
        return properties_to_dict(self._props)

    @property
    def response_topic(self) -> str | None:
        """The MQTT 5 response topic, if the publisher set one."""
        value = getattr(self._props, "ResponseTopic", None)
        return value if isinstance(value, str) else None

    @property
    def correlation_data(self) -> bytes | None:
        """The MQTT 5 correlation data, if the publisher set it."""
        value = getattr(self._props, "CorrelationData", None)
        return bytes(value) if value is not None else None

    def __repr__(self) -> str:
        return f"MQTTMessage(topic={self.topic!r}, qos={self.qos}, retain={self.retain}, params={self.params!r})"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be handed to its handler.

    Attributes:
        topic: Where it arrived.
        raw: The payload bytes.
        reason: ``"no_handler"`` (no subscription of this manager matches it),
            ``"decode_error"`` (not JSON, not UTF-8, nested too deep...),
            ``"validation_error"`` (did not match the subscription's model or the device
            protocol), ``"handler_error"`` (the handler raised) or ``"processing_error"``
            (an unexpected failure before the handler). The message was acknowledged
            only after the letter was delivered.
        detail: Human-readable reason, e.g. the JSON error or ``"RuntimeError: boom"``.
        filter: The subscription filter it was meant for, if known.
        extra: More facts, e.g. ``subscription_identifiers`` of a ``no_handler`` letter.
    """

    topic: str
    raw: bytes
    reason: str
    detail: str
    filter: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form published to the dead-letter topic (payload as UTF-8 text, lossy)."""
        return {
            "topic": self.topic,
            "reason": self.reason,
            "detail": self.detail,
            "filter": self.filter,
            "payload": self.raw.decode("utf-8", "replace")[:4096],
            "payload_bytes": len(self.raw),
        }
