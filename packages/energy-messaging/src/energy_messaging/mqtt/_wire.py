"""The PUBLISH codec: MQTT packets at the byte level, pure functions of bytes (no paho, no IO).

Decoding covers what the manager's subscriptions receive: QoS 0/1 with no properties,
subscription identifiers and user properties; any other property (response topic,
correlation data...) makes :func:`decode_publish` return None, and paho's full decoder
takes over (in :mod:`energy_messaging.mqtt._client`). It is property-tested against
paho's decoder (``tests/messaging/test_mqtt_wire_properties.py``).
"""

from __future__ import annotations

__all__ = ["MAX_REMAINING_LENGTH", "Incoming", "PublishProperties", "decode_publish", "encode_publish"]

_PUBLISH = 0x30  # packet type PUBLISH in the high nibble of the fixed header
#: What MQTT's variable byte integer can carry after the fixed header.
MAX_REMAINING_LENGTH = 268_435_455
_SUBSCRIPTION_IDENTIFIER = 0x0B
_USER_PROPERTY = 0x26


class Incoming:
    """A received PUBLISH: the attributes of paho's ``MQTTMessage`` that the manager reads."""

    __slots__ = ("_topic", "dup", "mid", "payload", "properties", "qos", "retain")

    def __init__(self, topic: bytes, payload: bytes, header: int, mid: int, properties: object) -> None:
        self._topic = topic
        self.payload = payload
        self.qos = header >> 1 & 3
        self.retain = bool(header & 1)
        self.dup = bool(header & 8)
        self.mid = mid
        self.properties = properties

    @property
    def topic(self) -> str:
        """The topic; raises UnicodeDecodeError if it is not UTF-8 (as paho's does)."""
        return self._topic.decode()


class PublishProperties:
    """MQTT 5 PUBLISH properties holding only subscription identifiers and user properties.

    Attributes are set only when present, like paho's ``Properties`` (read them with ``getattr``).
    """

    __slots__ = ("SubscriptionIdentifier", "UserProperty")

    SubscriptionIdentifier: list[int]
    UserProperty: list[tuple[str, str]]

    def __repr__(self) -> str:
        shown = {
            name: getattr(self, name) for name in ("SubscriptionIdentifier", "UserProperty") if hasattr(self, name)
        }
        return f"PublishProperties({shown})"


def _varint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise ValueError("variable byte integer longer than 4 bytes")


def _properties(data: bytes | bytearray, pos: int, end: int) -> PublishProperties | None:
    """Decode subscription identifiers and user properties.

    Returns None (paho decides) if another property is present or a value runs past
    ``end``; raises what paho refuses too (identifier 0, NUL or U+FEFF in a string).
    """
    props = PublishProperties()
    ids: list[int] = []
    users: list[tuple[str, str]] = []
    while pos < end:
        ident = data[pos]
        if ident == _SUBSCRIPTION_IDENTIFIER:
            value, pos = _varint(data, pos + 1)
            if value == 0:
                raise ValueError("subscription identifier 0")
            ids.append(value)
        elif ident == _USER_PROPERTY:
            pos += 1
            pair: list[str] = []
            for _ in range(2):
                if pos + 2 > end or pos + 2 + (size := data[pos] << 8 | data[pos + 1]) > end:
                    return None
                text = bytes(data[pos + 2 : pos + 2 + size]).decode()
                if "\x00" in text or "\ufeff" in text:
                    raise ValueError("NUL or U+FEFF in a user property (MQTT 1.5.4)")
                pair.append(text)
                pos += 2 + size
            users.append((pair[0], pair[1]))
        else:
            return None
    if pos > end:
        return None
    if ids:
        props.SubscriptionIdentifier = ids
    if users:
        props.UserProperty = users
    return props


def decode_publish(header: int, body: bytes | bytearray, v5: bool) -> Incoming | None:
    """Decode a QoS 0/1 PUBLISH (``body`` follows the fixed header); None: let paho decode it.

    Raises:
        ValueError, IndexError, UnicodeDecodeError: If the packet is malformed.
    """
    qos = header >> 1 & 3
    size = body[0] << 8 | body[1]
    pos = 2 + size
    if pos > len(body) or (size == 0 and not v5):
        raise ValueError("bad topic length")
    topic = bytes(body[2:pos])
    mid = 0
    if qos:
        mid = body[pos] << 8 | body[pos + 1]
        pos += 2
    props = None
    if v5:
        length, pos = _varint(body, pos)
        end = pos + length
        if end > len(body):
            raise ValueError("properties overrun the packet")
        if length:
            props = _properties(body, pos, end)
            if props is None:
                return None
        pos = end
    return Incoming(topic, bytes(body[pos:]), header, mid, props)


def encode_publish(topic: bytes, payload: bytes, qos: int, retain: bool, *, mid: int, properties: bytes) -> bytes:
    """Encode a PUBLISH packet (``properties`` already packed, empty before MQTT 5).

    Raises:
        ValueError: If the packet is larger than MQTT allows.
    """
    length = len(topic) + len(properties) + len(payload) + (4 if qos else 2)
    if length > MAX_REMAINING_LENGTH:
        raise ValueError(f"An MQTT packet carries at most {MAX_REMAINING_LENGTH} bytes.")
    header = bytearray((_PUBLISH | qos << 1 | retain,))
    while length > 0x7F:  # MQTT variable-length integer
        header.append(length & 0x7F | 0x80)
        length >>= 7
    header.append(length)
    header += len(topic).to_bytes(2, "big")
    if qos:
        return b"".join((header, topic, mid.to_bytes(2, "big"), properties, payload))
    return b"".join((header, topic, properties, payload))
