"""The inbound path on its own: every message ends handled or dead-lettered with a reason, never dropped.

These tests feed real PUBLISH packets, decoded by the wire codec, into a real Inbound
(router, dead letters, tasks), without a connection: the ack path is covered against the
broker in the manager and fault tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from energy_messaging.mqtt import DeadLetter, MQTTMessage
from energy_messaging.mqtt._dead_letters import DeadLetters
from energy_messaging.mqtt._inbound import Inbound
from energy_messaging.mqtt._router import Router, Subscription
from energy_messaging.mqtt._tasks import Status, Tasks
from energy_messaging.mqtt._wire import Incoming, PublishProperties, decode_publish, encode_publish
from energy_messaging.topics import TopicPattern


class Parts:
    """An Inbound with its router, the dead letters it produced and the messages handled."""

    def __init__(self) -> None:
        self.status = Status()
        self.tasks = Tasks(self.status, "test")
        self.router = Router()
        self.letters: list[DeadLetter] = []
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.handled: list[MQTTMessage] = []

        async def publish(topic: str, payload: dict[str, Any]) -> None:
            self.published.append((topic, payload))

        self.dead = DeadLetters(self.letters.append, "dead/letters", publish, self.tasks)
        self.inbound = Inbound(self.router, self.dead, self.tasks, concurrency=2, max_queued=100)

    def subscribe(self, topic_filter: str, **kwargs: Any) -> Subscription:
        """Register a handler recording what it gets."""

        async def handler(message: MQTTMessage) -> None:
            self.handled.append(message)

        sub = Subscription(TopicPattern(topic_filter), handler, 1, kwargs.get("decode", True), kwargs.get("model"))
        self.router.add(sub)
        return sub

    async def settle(self, count: int) -> None:
        """Wait until ``count`` messages were finished."""
        async with asyncio.timeout(5):
            while self.inbound.stats.handled < count:  # noqa: ASYNC110 - polls a plain counter
                await asyncio.sleep(0.005)


@pytest.fixture
async def parts() -> AsyncIterator[Parts]:
    """Started inbound parts, stopped after the test."""
    made = Parts()
    made.inbound.start()
    yield made
    await made.inbound.stop()
    await made.tasks.cancel_all()


def packet(topic: str, payload: bytes, *, identifiers: list[int] | None = None, mid: int = 1) -> Incoming:
    """A QoS 1 PUBLISH as the client decodes it (MQTT 5, optional subscription identifiers)."""
    props = b"\x00"
    if identifiers:
        body = b"".join(b"\x0b" + bytes([i]) for i in identifiers)
        props = bytes([len(body)]) + body
    raw = encode_publish(topic.encode(), payload, 1, False, mid=mid, properties=props)
    start = 1
    while raw[start] & 0x80:  # the remaining length's continuation bytes
        start += 1
    decoded = decode_publish(raw[0], raw[start + 1 :], True)
    assert decoded is not None
    return decoded


async def test_message_without_a_handler_is_a_no_handler_dead_letter(parts: Parts) -> None:
    """Outside the resume hold a message no filter matches becomes a no_handler letter naming the stale identifiers."""
    parts.subscribe("a/b")
    parts.inbound.deliver(packet("x/y", b"{}", identifiers=[5]))
    await parts.settle(1)
    [letter] = parts.letters
    assert (letter.reason, letter.topic, letter.extra) == ("no_handler", "x/y", {"subscription_identifiers": [5]})
    assert parts.dead.by_reason == {"no_handler": 1}
    assert parts.published == [("dead/letters", letter.to_dict())]  # published before the message counts as done


async def test_stale_identifier_routes_by_topic(parts: Parts) -> None:
    """A message carrying an identifier of another run reaches the handler whose filter matches."""
    parts.subscribe("devices/{device_id}/telemetry")
    parts.inbound.deliver(packet("devices/m7/telemetry", b'{"w": 1}', identifiers=[99]))
    await parts.settle(1)
    assert [(m.params, m.payload) for m in parts.handled] == [({"device_id": "m7"}, {"w": 1})]
    assert parts.letters == []


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "RecursionError"),
        (b"\xc3\x28", "UnicodeDecodeError"),
        (b"{not json", "JSONDecodeError"),
    ],
)
async def test_every_decode_failure_is_a_decode_error(parts: Parts, payload: bytes, kind: str) -> None:
    """Deep nesting, invalid UTF-8 and invalid JSON all become decode_error letters naming the exception."""
    parts.subscribe("t")
    parts.inbound.deliver(packet("t", payload))
    await parts.settle(1)
    [letter] = parts.letters
    assert letter.reason == "decode_error"
    assert letter.detail.startswith(kind)
    assert letter.raw == payload


async def test_a_validator_raising_anything_is_a_validation_error(parts: Parts) -> None:
    """A model whose validation raises a non-ValueError still dead-letters the message (validation_error)."""

    class Strict:
        @classmethod
        def model_validate(cls, value: object) -> object:
            raise TypeError("no")

    parts.subscribe("m", model=Strict)
    parts.inbound.deliver(packet("m", b"{}"))
    await parts.settle(1)
    assert [(letter.reason, letter.detail) for letter in parts.letters] == [("validation_error", "no")]


async def test_unexpected_failure_while_preparing_is_a_processing_error(parts: Parts) -> None:
    """A failure outside the handler (here: malformed properties) is a processing_error letter, and work goes on."""
    parts.subscribe("p")
    bad = packet("p", b"1")
    props = PublishProperties()
    props.SubscriptionIdentifier = 5  # type: ignore[assignment] - not a list: routing raises TypeError
    bad.properties = props
    parts.inbound.deliver(bad)
    parts.inbound.deliver(packet("p", b"2", mid=2))
    await parts.settle(2)
    assert [letter.reason for letter in parts.letters] == ["processing_error"]
    assert parts.letters[0].detail.startswith("TypeError")
    assert [m.payload for m in parts.handled] == [2]


async def test_handler_failure_is_a_handler_error_and_counted(parts: Parts) -> None:
    """A raising handler is counted and dead-lettered with the exception type and message."""

    async def broken(message: MQTTMessage) -> None:
        raise RuntimeError("boom")

    parts.router.add(Subscription(TopicPattern("h"), broken, 1))
    parts.inbound.deliver(packet("h", b"{}"))
    await parts.settle(1)
    assert parts.inbound.stats.handler_errors == 1
    assert [(letter.reason, letter.detail, letter.filter) for letter in parts.letters] == [
        ("handler_error", "RuntimeError: boom", "h")
    ]


async def test_hold_routes_when_a_handler_arrives_and_dead_letters_when_it_closes(parts: Parts) -> None:
    """In the hold a message waits for a subscription; one arriving routes it, the rest dead-letter at the deadline."""
    parts.inbound.hold_unrouted(0.5)
    parts.inbound.deliver(packet("later/a", b"1"))
    parts.inbound.deliver(packet("never/b", b"2", mid=2))
    await asyncio.sleep(0.1)
    assert parts.inbound.stats.held == 2
    assert parts.inbound.queued == 2
    parts.subscribe("later/#")
    await parts.settle(1)
    assert [m.payload for m in parts.handled] == [1]
    assert parts.letters == []
    await parts.settle(2)
    assert [letter.reason for letter in parts.letters] == ["no_handler"]
    assert parts.inbound.stats.held == 0


async def test_drain_gives_up_held_messages_without_finishing_them(parts: Parts) -> None:
    """Draining during the hold returns at once; held messages are neither handled nor dead-lettered."""
    parts.inbound.hold_unrouted(30)
    parts.inbound.deliver(packet("held", b"1"))
    await asyncio.sleep(0.05)
    assert await parts.inbound.drain(2)
    assert parts.inbound.stats.handled == 0
    assert parts.letters == []
