"""The hand-written PUBLISH codec, property-tested and checked byte for byte against paho's own decoder.

On the same bytes, :func:`decode_publish` never decodes differently from paho's
``decode_publish``, never decodes what paho refuses and never refuses what paho decodes.
It may return None, which means "paho decides" (the client then runs paho's decoder):
always for properties other than subscription identifiers and user properties, and for
malformed property sections paho reads leniently (a value running past the property
length). Well-formed packets with only those two properties it decodes itself.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt._packet as paho_packet  # paho's pure packet decoder: the reference
import pytest
from energy_messaging.mqtt._wire import decode_publish, encode_publish
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PROFILE = settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANAGED = {"SubscriptionIdentifier", "UserProperty"}  # what _wire decodes itself

mqtt_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufeff"), max_size=12)
topics = mqtt_text.filter(bool).map(lambda text: text.encode())


def paho_decode(header: int, body: bytes, v5: bool) -> Any:
    """Paho's decoding of the packet, or the exception it raised."""
    protocol = MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311
    try:
        return paho_packet.decode_publish(header, body, protocol)
    except Exception as exc:  # noqa: BLE001 - a refusal is a result here
        return exc


def ours(header: int, body: bytes, v5: bool) -> Any:
    """Our decoding of the packet (None: left to paho), or the exception it raised."""
    try:
        return decode_publish(header, body, v5)
    except Exception as exc:  # noqa: BLE001 - a refusal is a result here
        return exc


def split(packet: bytes) -> tuple[int, bytes]:
    """Fixed header byte and the body after the remaining length."""
    pos = 1
    while packet[pos] & 0x80:
        pos += 1
    return packet[0], packet[pos + 1 :]


def assert_same(header: int, body: bytes, v5: bool) -> None:
    """Both decoders agree on ``body`` (see the module docstring)."""
    mine, theirs = ours(header, body, v5), paho_decode(header, body, v5)
    if isinstance(theirs, Exception):
        assert mine is None or isinstance(mine, Exception), f"decoded what paho refuses ({theirs!r}): {body!r}"
        return
    props = theirs.properties
    present = (
        set() if props is None else {n.replace(" ", "") for n in props.names if hasattr(props, n.replace(" ", ""))}
    )
    if present - MANAGED:
        assert mine is None, f"decoded itself a packet with {present - MANAGED}: {body!r} -> {mine!r}"
        return
    assert not isinstance(mine, Exception), f"refused what paho decodes ({mine!r}): {body!r}"
    if mine is None:
        return  # paho decides (checked not to happen for well-formed packets below)
    assert (mine._topic, mine.payload, mine.mid) == (theirs.topic, theirs.payload, theirs.mid)
    assert (mine.qos, mine.retain, mine.dup) == (theirs.qos, theirs.retain, theirs.dup)
    for name in MANAGED:
        expected = getattr(props, name, None) if props is not None else None
        got = getattr(mine.properties, name, None) if mine.properties is not None else None
        if expected is not None and name == "SubscriptionIdentifier" and not isinstance(expected, list):
            expected = [expected]
        assert got == expected, (name, body)


@st.composite
def publish_properties(draw: st.DrawFn) -> Properties | None:
    """MQTT 5 PUBLISH properties: subscription identifiers, user properties, sometimes another one."""
    if not draw(st.booleans()):
        return None
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for identifier in draw(st.lists(st.integers(1, 268_435_455), max_size=3)):
        props.SubscriptionIdentifier = identifier
    for pair in draw(st.lists(st.tuples(mqtt_text, mqtt_text), max_size=3)):
        props.UserProperty = pair
    if draw(st.booleans()):
        props.ContentType = draw(mqtt_text)
    return props


@PROFILE
@given(
    topic=topics,
    payload=st.binary(max_size=300),
    qos=st.sampled_from([0, 1]),
    retain=st.booleans(),
    mid=st.integers(1, 65_535),
    v5=st.booleans(),
    props=publish_properties(),
)
def test_encoded_packets_decode_like_paho(
    *, topic: bytes, payload: bytes, qos: int, retain: bool, mid: int, v5: bool, props: Properties | None
) -> None:
    """Every packet encode_publish builds decodes to its parts, exactly as paho decodes it."""
    packed = (props.pack() if props is not None else b"\x00") if v5 else b""  # type: ignore[no-untyped-call]
    header, body = split(encode_publish(topic, payload, qos, retain, mid=mid if qos else 0, properties=packed))
    assert_same(header, body, v5)
    decoded = decode_publish(header, body, v5)
    if v5 and props is not None and getattr(props, "ContentType", None) is not None:
        assert decoded is None  # another property: paho decodes it
        return
    assert decoded is not None, "a well-formed packet takes the fast path"
    assert (decoded._topic, decoded.payload, decoded.qos, decoded.retain) == (topic, payload, qos, retain)


@PROFILE
@given(header=st.sampled_from([0x30, 0x31, 0x32, 0x33, 0x38, 0x3B]), body=st.binary(max_size=64), v5=st.booleans())
@example(header=0x30, body=b"\x00\x01a\x05\x26\x00\x00\x00\x00", v5=True)  # user property "" = ""
@example(header=0x30, body=b"\x00\x01a\x07\x26\x00\x01\x00\x00\x01b", v5=True)  # NUL in a user property
@example(header=0x30, body=b"\x00\x01a\x02\x0b\x00", v5=True)  # subscription identifier 0
@example(header=0x30, body=b"\x00\x01a\x03\x0b\x8b\x00", v5=True)  # identifier in two bytes (not minimal)
@example(header=0x30, body=b"\x00\x01a\x01\x0b\x81\x01", v5=True)  # identifier runs past the properties
@example(header=0x30, body=b"\x00\x00", v5=False)  # empty topic on 3.1.1
def test_arbitrary_bytes_are_decoded_or_refused_like_paho(header: int, body: bytes, v5: bool) -> None:
    """On arbitrary bytes the codec decodes what paho decodes and refuses what paho refuses."""
    assert_same(header, body, v5)


@PROFILE
@given(
    prefix=st.binary(min_size=1, max_size=40),
    flip=st.integers(0, 39),
    value=st.integers(0, 255),
    v5=st.booleans(),
)
def test_mutated_valid_packets_agree_with_paho(prefix: bytes, flip: int, value: int, v5: bool) -> None:
    """A valid packet with one byte changed is decoded or refused as paho does."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.SubscriptionIdentifier = 300
    props.UserProperty = ("k", "v")
    packed = props.pack() if v5 else b""  # type: ignore[no-untyped-call]
    header, body = split(encode_publish(b"a/b", prefix, 1, False, mid=7, properties=packed))
    mutated = bytearray(body)
    mutated[flip % len(mutated)] = value
    assert_same(header, bytes(mutated), v5)


@pytest.mark.parametrize("size", [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152])
def test_remaining_length_boundaries_round_trip(size: int) -> None:
    """Packets whose remaining length crosses a varint boundary keep every byte."""
    payload = b"x" * max(size - 5, 0)
    header, body = split(encode_publish(b"t", payload, 0, False, mid=0, properties=b""))
    decoded = decode_publish(header, body, False)
    assert decoded is not None
    assert decoded.payload == payload
