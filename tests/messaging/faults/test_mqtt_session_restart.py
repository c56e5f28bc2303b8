"""A new release resumes the old session: reordered, added and removed filters still route every queued message.

The broker queues QoS 1 messages for a stopped persistent session and delivers them,
with the *old* process's MQTT 5 subscription identifiers, to the next process with the
same ``client_id``. Whatever that process registers, and in whichever order, each queued
message must reach the handlers whose filters match its topic, and a message nobody
handles any more must be a ``no_handler`` dead letter, counted in ``state`` and logged
once for the filter, not once per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from energy_messaging.mqtt import DeadLetter, MQTTManager, MQTTMessage

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

PER_FILTER = 20


@pytest.mark.parametrize("registration", ["subscribe-then-connect", "connect-then-subscribe"])
async def test_restart_with_other_filters_routes_every_queued_message(
    private_broker: Callable[..., Any],
    poll: Callable[..., Any],
    messaging_logs: Any,
    registration: str,
    unique: str,
) -> None:
    """After a restart with filters reordered, added and removed, queued messages reach their handlers or are ``no_handler`` dead letters."""
    broker = private_broker()
    client_id = f"release-{unique}"
    old = {name: f"rel/{name}/+" for name in ("a", "b", "c")}
    new = {name: f"rel/{name}/+" for name in ("c", "d", "a")}  # reordered, d added, b removed

    async def ignore(message: MQTTMessage) -> None:
        pass

    # The old release: a, b, c in this order, then a crash (no DISCONNECT; the session stays).
    first = MQTTManager(broker.host, broker.port, client_id=client_id, protocol="5")
    for topic_filter in old.values():
        await first.subscribe(topic_filter, ignore, qos=1)
    await first.connect()
    await first.abort()

    async with MQTTManager(broker.host, broker.port, protocol="5") as pub:
        for name in old:
            for n in range(PER_FILTER):
                await pub.publish(f"rel/{name}/{n}", {"n": n}, qos=1)  # acked: queued for the session

    received: dict[str, list[str]] = {name: [] for name in new}
    letters: list[DeadLetter] = []

    def handler_for(name: str) -> Callable[[MQTTMessage], Any]:
        async def handler(message: MQTTMessage) -> None:
            received[name].append(message.topic)

        return handler

    def report() -> str:
        counts = {name: len(topics) for name, topics in received.items()}
        reasons = sorted({(letter.reason, letter.topic.split("/")[1]) for letter in letters})
        return f"handled per filter {counts}, dead letters {len(letters)} {reasons}, state {second.state}"

    second = MQTTManager(broker.host, broker.port, client_id=client_id, protocol="5", on_dead_letter=letters.append)
    logged_before = len(messaging_logs.records)
    try:
        if registration == "connect-then-subscribe":  # the seed's order
            await second.connect()
        for name, topic_filter in new.items():
            await second.subscribe(topic_filter, handler_for(name), qos=1)
        if registration == "subscribe-then-connect":
            await second.connect()

        def done() -> bool:
            dead = {letter.topic for letter in letters}
            return len(set(received["a"])) == len(set(received["c"])) == len(dead) == PER_FILTER

        await poll(done, 60, report, progress=lambda: (len(letters), *map(len, received.values())))

        # The added filter works for new messages.
        async with MQTTManager(broker.host, broker.port, protocol="5") as pub:
            await pub.publish("rel/d/1", {"n": 1}, qos=1)
        await poll(lambda: received["d"], 30, report)

        # Duplicates are allowed (QoS 1); a message at the wrong handler, or lost, is not.
        assert set(received["a"]) == {f"rel/a/{n}" for n in range(PER_FILTER)}, report()
        assert set(received["c"]) == {f"rel/c/{n}" for n in range(PER_FILTER)}, report()
        assert set(received["d"]) == {"rel/d/1"}, report()
        assert {letter.topic for letter in letters} == {f"rel/b/{n}" for n in range(PER_FILTER)}, report()
        assert {letter.reason for letter in letters} == {"no_handler"}, report()
        state = second.state
        assert state.dead_letters == len(letters), report()
        assert state.dead_letter_reasons == {"no_handler": len(letters)}, report()
        assert state.handler_errors == 0
    finally:
        await second.disconnect()
    # Logged once for the filter, not once per message.
    warnings = [r for r in messaging_logs.records[logged_before:] if r.levelno >= logging.WARNING]
    assert 1 <= len(warnings) < PER_FILTER // 4, [r.getMessage() for r in warnings]


async def test_resumed_queue_larger_than_the_inbound_queue_drains(
    private_broker: Callable[..., Any],
    poll: Callable[..., Any],
    unique: str,
) -> None:
    """A resumed queue 12x the inbound queue, half of it for a removed filter, all arrives or is dead-lettered."""
    broker = private_broker()
    client_id = f"drain-{unique}"
    per_filter = 300

    async def ignore(message: MQTTMessage) -> None:
        pass

    first = MQTTManager(broker.host, broker.port, client_id=client_id)
    await first.subscribe("big/a/+", ignore, qos=1)
    await first.subscribe("big/b/+", ignore, qos=1)
    await first.connect()
    await first.abort()
    async with MQTTManager(broker.host, broker.port, max_buffered_publishes=2 * per_filter) as pub:
        for n in range(per_filter):  # interleaved: held messages for b sit between those for a
            await pub.publish(f"big/b/{n}", {"n": n}, qos=1, wait=False)
            await pub.publish(f"big/a/{n}", {"n": n}, qos=1, wait=False)
        async with asyncio.timeout(60):
            await pub.flush()

    received: set[str] = set()
    letters: list[DeadLetter] = []

    async def handler(message: MQTTMessage) -> None:
        received.add(message.topic)

    second = MQTTManager(
        broker.host,
        broker.port,
        client_id=client_id,
        max_queued_messages=50,
        on_dead_letter=letters.append,
    )
    try:
        await second.connect()  # the seed's order: the queue starts arriving now
        await second.subscribe("big/a/+", handler, qos=1)
        await poll(
            lambda: len(received) == per_filter and len({letter.topic for letter in letters}) == per_filter,
            90,
            lambda: f"{len(received)} handled, {len(letters)} dead letters; state {second.state}",
            progress=lambda: (len(received), len(letters)),
        )
        assert {letter.reason for letter in letters} == {"no_handler"}
        assert {letter.topic for letter in letters} == {f"big/b/{n}" for n in range(per_filter)}
        assert second.state.dead_letter_reasons == {"no_handler": len(letters)}
    finally:
        await second.disconnect()
