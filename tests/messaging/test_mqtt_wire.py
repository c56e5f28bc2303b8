"""PUBLISH encoding and decoding at the byte level, checked against paho's own property codec."""

from __future__ import annotations

from typing import Any

import pytest
from energy_messaging.mqtt._wire import decode_publish, encode_publish
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def split(packet: bytes) -> tuple[int, bytes]:
    """Return the first byte and the body after the fixed header, checking the remaining length."""
    length, shift, pos = 0, 0, 1
    while True:
        byte = packet[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    assert len(packet) - pos == length
    return packet[0], packet[pos:]


def packed(**values: Any) -> bytes:
    """MQTT 5 PUBLISH properties packed by paho."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    result: bytes = props.pack()  # type: ignore[no-untyped-call]
    return result


@pytest.mark.parametrize("qos", [0, 1])
@pytest.mark.parametrize("retain", [False, True])
@pytest.mark.parametrize("size", [0, 100, 127 - 12, 20_000, 2_100_000])
def test_round_trip_keeps_every_field(qos: int, retain: bool, size: int) -> None:
    """What encode_publish writes, decode_publish reads back: topic, payload, QoS, retain, id, no properties."""
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    header, body = split(encode_publish(b"devices/d1/telemetry", payload, qos, retain, mid=513, properties=b"\x00"))
    message = decode_publish(header, body, v5=True)
    assert message is not None
    assert (message.topic, message.payload, message.qos, message.retain, message.dup) == (
        "devices/d1/telemetry",
        payload,
        qos,
        retain,
        False,
    )
    assert message.mid == (513 if qos else 0)
    assert message.properties is None


def test_mqtt_311_packet_has_no_properties_section() -> None:
    """On 3.1.1 there is no properties section and the payload follows the packet id."""
    header, body = split(encode_publish(b"t", b"{}", 1, False, mid=7, properties=b""))
    message = decode_publish(header, body, v5=False)
    assert message is not None
    assert (message.topic, message.payload, message.mid, message.properties) == ("t", b"{}", 7, None)


def test_subscription_ids_and_user_properties_match_paho() -> None:
    """Subscription identifiers and user properties decode to the values paho's Properties holds."""
    users = [("x-request-id", "req-1"), ("traceparent", "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"), ("ü", "")]
    raw = packed(SubscriptionIdentifier=300_000, UserProperty=users)
    reference = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    reference.unpack(raw)  # type: ignore[no-untyped-call]
    header, body = split(encode_publish(b"a/b", b"x", 1, False, mid=1, properties=raw))
    message = decode_publish(header, body, v5=True)
    assert message is not None
    assert message.properties.SubscriptionIdentifier == reference.SubscriptionIdentifier == [300_000]  # type: ignore[attr-defined]
    assert message.properties.UserProperty == reference.UserProperty == users  # type: ignore[attr-defined]
    assert message.payload == b"x"


def test_other_properties_are_left_to_paho() -> None:
    """A PUBLISH with a property beyond subscription ids and user properties is not decoded here."""
    raw = packed(ResponseTopic="devices/d1/replies/i1", CorrelationData=b"\x01\x02")
    header, body = split(encode_publish(b"a", b"x", 1, False, mid=1, properties=raw))
    assert decode_publish(header, body, v5=True) is None


@pytest.mark.parametrize(
    ("body", "v5"),
    [
        (b"\x00", True),  # no room for the topic length
        (b"\x00\x09abc", True),  # topic longer than the packet
        (b"\x00\x00", False),  # 3.1.1 forbids an empty topic
        (b"\x00\x01a\x05\x0b\x01", True),  # properties longer than the packet
        (b"\x00\x01a\x02\x0b\x80", True),  # a variable byte integer cut short
        (b"\x00\x01a\x04\x26\x00\x01\xff", True),  # user property that is not UTF-8 / cut short
    ],
)
def test_malformed_packets_raise(body: bytes, v5: bool) -> None:
    """Truncated or inconsistent packets raise instead of yielding a message."""
    with pytest.raises((ValueError, IndexError)):
        decode_publish(0x30, body, v5=v5)


def test_topic_that_is_not_utf8_raises_on_access() -> None:
    """A topic that is not UTF-8 decodes, and reading it raises UnicodeDecodeError as paho's message does."""
    header, body = split(encode_publish(b"\xff", b"", 0, False, mid=0, properties=b"\x00"))
    message = decode_publish(header, body, v5=True)
    assert message is not None
    with pytest.raises(UnicodeDecodeError):
        _ = message.topic
