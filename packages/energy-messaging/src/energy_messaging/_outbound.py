"""Outgoing path: payload encoding, context injection and the bounded publish buffer."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from energy_messaging import _context
from energy_messaging._errors import (
    MessageTooLargeError,
    PayloadEncodeError,
    PublishBufferFullError,
    PublishError,
    TopicValidationError,
)
from energy_messaging._protocol import CONTEXT_FIELD
from energy_messaging._topics import validate_topic

__all__ = [
    "Outbound",
    "Outgoing",
    "encode_payload",
    "make_properties",
    "publish_size",
    "topic_bytes",
]

logger = logging.getLogger("energy_messaging.mqtt")

_PROPERTY_KEYS = {
    "response_topic": "ResponseTopic",
    "correlation_data": "CorrelationData",
    "content_type": "ContentType",
    "message_expiry_interval": "MessageExpiryInterval",
    "payload_format_indicator": "PayloadFormatIndicator",
}


if TYPE_CHECKING:
    import json

    from energy_messaging._client import Client

_encoder: json.JSONEncoder | None = None  # one instance (json.dumps builds one per call), made on first use
_MAX_INFLIGHT = 65_535  # MQTT packet ids: no more can await an acknowledgement at once
_MAX_REMAINING_LENGTH = 268_435_455  # MQTT: at most this after the fixed header (as in _wire, loaded later)
_ROUGH_OVERHEAD = 16  # fixed header, topic length, packet id, empty properties: at most this many bytes
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


def _too_large(topic: str, size: int, limit: int, kind: str) -> MessageTooLargeError:
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


def make_properties(properties: Mapping[str, Any] | None, user_properties: list[tuple[str, str]]) -> Properties | None:
    """Build paho MQTT 5 PUBLISH properties from snake_case names plus user properties."""
    if not properties and not user_properties:
        return None
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


class Outgoing:
    """A publish accepted by the manager and not yet confirmed."""

    __slots__ = ("done", "payload", "properties", "qos", "retain", "topic", "wire_topic")

    def __init__(
        self,
        topic: str,
        wire_topic: bytes,
        payload: bytes,
        *,
        qos: int,
        retain: bool,
        properties: Properties | None,
        done: asyncio.Future[None] | None,
    ) -> None:
        self.topic = topic
        self.wire_topic = wire_topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.done = done


class Outbound:
    """Send publishes now (at most ``max_inflight`` unacknowledged), or buffer them while disconnected."""

    def __init__(self, max_buffered: int, max_inflight: int = 100, max_payload: int | None = None) -> None:
        self.max_buffered = max_buffered
        self._max_inflight = max_inflight if 0 < max_inflight < _MAX_INFLIGHT else _MAX_INFLIGHT
        #: The window in use: ``max_inflight``, capped by the broker's Receive Maximum.
        self.max_inflight = self._max_inflight
        self.max_payload = max_payload
        #: The broker's Maximum Packet Size (MQTT 5 CONNACK of the last connection), if any.
        self.max_packet: int | None = None
        self.buffer: deque[Outgoing] = deque()
        self.client: Client | None = None
        self._inflight: dict[int, Outgoing] = {}  # by message id, in send order
        self._window: deque[Outgoing] = deque()  # QoS > 0, connected, waiting for room in the window
        self._idle: list[asyncio.Future[None]] = []

    @property
    def pending(self) -> int:
        """Publishes buffered, waiting for the in-flight window or awaiting their acknowledgement."""
        return len(self.buffer) + len(self._window) + len(self._inflight)

    async def wait_idle(self) -> None:
        """Return once nothing is buffered or awaiting a PUBACK."""
        if self.pending:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            await waiter

    def _check_idle(self) -> None:
        if self._idle and not self.pending:
            waiters, self._idle = self._idle, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    @staticmethod
    def context(v5: bool) -> tuple[dict[str, str] | None, list[tuple[str, str]]]:
        """Return the context for the payload (3.1.1) and for user properties (MQTT 5)."""
        carrier = _context.current_carrier()
        if not carrier:
            return None, []
        if v5:
            return None, _context.to_user_properties(carrier)
        return carrier, []

    def check_size(
        self, topic: str, wire_topic: bytes, payload: bytes, *, qos: int, properties: Properties | None, v5: bool
    ) -> None:
        """Refuse a publish larger than ``max_payload``, the broker's or MQTT's packet limit.

        Raises:
            MessageTooLargeError: If it is too large.
        """
        size = len(payload)
        if self.max_payload is not None and size > self.max_payload:
            raise _too_large(topic, size, self.max_payload, "max_payload_bytes")
        rough = size + len(wire_topic) + _ROUGH_OVERHEAD
        broker = self.max_packet
        if rough <= _MAX_REMAINING_LENGTH and (broker is None or (properties is None and rough <= broker)):
            return  # far from every limit (large properties without a broker limit: see _send)
        packed = 0
        if v5:
            packed = len(properties.pack()) if properties is not None else 1  # type: ignore[no-untyped-call]
        remaining, total = publish_size(len(wire_topic), size, qos, packed)
        if remaining > _MAX_REMAINING_LENGTH:
            raise _too_large(topic, remaining, _MAX_REMAINING_LENGTH, "mqtt_maximum_remaining_length")
        if broker is not None and total > broker:
            raise _too_large(topic, total, broker, "broker_maximum_packet_size")

    def submit(self, item: Outgoing) -> None:
        """Send ``item`` now if connected (and nothing older waits), else buffer it.

        Raises:
            PublishBufferFullError: If it must be buffered and the buffer is full.
        """
        if self.client is not None and not self.buffer:
            if item.qos and (self._window or len(self._inflight) >= self.max_inflight):
                self._window.append(item)
            else:
                self._send(self.client, item)
            return
        if len(self.buffer) >= self.max_buffered:
            raise PublishBufferFullError(
                f"The broker is unreachable and {self.max_buffered} publishes are already buffered; "
                "retry once connected or raise max_buffered_publishes.",
                {"max_buffered_publishes": self.max_buffered, "topic": item.topic},
            )
        self.buffer.append(item)

    def _send(self, client: Client, item: Outgoing) -> bool:
        try:
            mid = client.send(item)
        except ValueError as exc:
            # Too large for this connection (a new broker may allow less than the last one):
            # refuse this message alone; put back in the buffer it would block all behind it.
            self._refuse(item, exc)
            return True
        except Exception:  # noqa: BLE001 - paho refused: the connection just went away
            self.buffer.appendleft(item)
            return False
        if mid is None:
            if item.done is not None and not item.done.done():
                item.done.set_result(None)
            self._check_idle()
        else:
            self._inflight[mid] = item
        return True

    def _refuse(self, item: Outgoing, exc: ValueError) -> None:
        broker = self.max_packet
        error = MessageTooLargeError(
            f"The message to {item.topic!r} ({len(item.payload)} bytes of payload) is larger than the "
            f"connection allows ({exc}); send less per message.",
            {
                "topic": item.topic,
                "size": len(item.payload),
                "limit": broker or _MAX_REMAINING_LENGTH,
                "limit_kind": "broker_maximum_packet_size" if broker else "mqtt_maximum_remaining_length",
            },
        )
        if item.done is not None and not item.done.done():
            item.done.set_exception(error)
        else:
            logger.warning("MQTT message to %s refused: %s", item.topic, error.message)
        self._check_idle()

    def acked(self, mid: int, reason: int = 0) -> None:
        """The broker acknowledged ``mid`` (called by the client); a reason >= 0x80 is a refusal."""
        item = self._inflight.pop(mid, None)
        if item is not None and item.done is not None and not item.done.done():
            if reason >= 0x80:
                item.done.set_exception(
                    PublishError(
                        f"The broker refused the message to {item.topic!r} (reason code {reason}); check its ACL and quotas.",
                        {"topic": item.topic, "reason_code": reason},
                    )
                )
            else:
                item.done.set_result(None)
        elif item is not None and reason >= 0x80:
            logger.warning("MQTT broker refused a message to %s (reason code %d)", item.topic, reason)
        window = self._window
        client = self.client
        while window and client is not None and len(self._inflight) < self.max_inflight:
            if not self._send(client, window.popleft()):
                break
        if not self._inflight:
            self._check_idle()

    def attach(self, client: Client) -> None:
        """Connected: send the buffer in order (QoS > 0 beyond the window waits for it), then send directly.

        The window and the packet limit follow the broker's MQTT 5 CONNACK (Receive Maximum,
        Maximum Packet Size) when it advertises them.
        """
        self.client = client
        receive = client.receive_maximum
        self.max_inflight = min(self._max_inflight, receive) if receive else self._max_inflight
        self.max_packet = client.maximum_packet_size
        buffer = self.buffer
        while buffer and self.client is client:
            item = buffer.popleft()
            if item.qos and (self._window or len(self._inflight) >= self.max_inflight):
                self._window.append(item)
            elif not self._send(client, item):
                break

    def detach(self) -> None:
        """Disconnected: publishes not yet acknowledged go back to the buffer, in order (at least once)."""
        self.client = None
        self.buffer.extendleft(reversed([*self._inflight.values(), *self._window]))
        self._inflight.clear()
        self._window.clear()

    def fail_all(self, exc: BaseException) -> int:
        """Fail every buffered publish (at shutdown); return how many there were."""
        count = len(self.buffer)
        while self.buffer:
            item = self.buffer.popleft()
            if item.done is not None and not item.done.done():
                item.done.set_exception(exc)
        return count
