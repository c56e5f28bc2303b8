"""A consumer process SIGKILLed mid-stream and restarted loses no QoS 1 message, in either registration order.

The consumer keeps a persistent session (stable ``client_id``); while it is down the
broker queues the stream for it and delivers that queue right after the CONNACK of the
restarted process, before or after its handlers are registered depending on the order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from energy_messaging.mqtt import MQTTManager

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

TOTAL = 3_000


REGISTRATIONS = {
    "connect-then-subscribe": ("connect-first", "subscribe"),  # the seed's order
    "connect-then-on": ("connect-first", "on"),
    "on-then-connect": ("register-first", "on"),
    "subscribe-then-connect": ("register-first", "subscribe"),
}


@pytest.mark.parametrize("registration", list(REGISTRATIONS))
async def test_killed_consumer_loses_no_qos1_message(
    private_broker: Callable[..., Any],
    consumer_process: Callable[..., Any],
    poll: Callable[..., Any],
    registration: str,
    unique: str,
) -> None:
    """A consumer SIGKILLed mid-stream and restarted with its session handles all 3,000 QoS 1 messages."""
    broker = private_broker()
    topic = "crash/stream"
    order, api = REGISTRATIONS[registration]
    consumer = consumer_process(broker.port, f"crash-{unique}", [("stream", topic)], order=order, api=api)
    await consumer.start()

    def seen() -> set[int]:
        return {payload["n"] for payload in consumer.handled("stream") if payload["n"] >= 0}

    def missing() -> str:
        lost = sorted(set(range(TOTAL)) - seen())
        return (
            f"every message handled: {len(lost)} of {TOTAL} missing (first {lost[:10]}); "
            f"dead letters {consumer.dead_letters()[:5]}; consumer state {consumer.state()}"
        )

    async with MQTTManager(broker.host, broker.port, max_buffered_publishes=TOTAL) as pub:
        # on() subscribes in the background: probe until the session's subscription is in place.
        for _ in range(300):
            if consumer.handled("stream"):
                break
            await pub.publish(topic, {"n": -1}, qos=1)
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the consumer never received a probe: its subscription is not in place")
        # First half while the consumer runs; it is killed once it is busy with them.
        for n in range(TOTAL // 2):
            await pub.publish(topic, {"n": n}, qos=1, wait=False)
            if n % 100 == 99:
                await asyncio.sleep(0)
        await poll(lambda: len(seen()) >= TOTAL // 10, 60, lambda: "the consumer to get going")
        await consumer.kill()
        assert len(seen()) < TOTAL // 2, "the kill must land mid-stream"
        # Second half while it is down: the broker queues all of it for the session.
        for n in range(TOTAL // 2, TOTAL):
            await pub.publish(topic, {"n": n}, qos=1, wait=False)
        async with asyncio.timeout(60):
            await pub.flush()
        await consumer.start()
        await poll(lambda: seen() == set(range(TOTAL)), 90, missing, progress=lambda: len(consumer.lines()))
    assert consumer.dead_letters() == []


async def test_consumer_killed_before_registering_handlers_loses_nothing(
    private_broker: Callable[..., Any],
    consumer_process: Callable[..., Any],
    poll: Callable[..., Any],
    unique: str,
) -> None:
    """A consumer killed between ``connect()`` and its registration has acknowledged none of its resumed queue."""
    broker = private_broker()
    topic = "early/stream"
    total = 500
    client_id = f"early-{unique}"
    # The session: subscribed once, then the process is gone.
    first = consumer_process(broker.port, client_id, [("stream", topic)])
    await first.start()
    await first.kill()
    async with MQTTManager(broker.host, broker.port, max_buffered_publishes=total) as pub:
        for n in range(total):
            await pub.publish(topic, {"n": n}, qos=1, wait=False)
        async with asyncio.timeout(60):
            await pub.flush()
    # The next release connects first and is killed while still starting up (before its handlers exist).
    early = consumer_process(broker.port, client_id, [("stream", topic)], order="connect-first", register_delay=30)
    await early.start(until="connected")
    await poll(
        lambda: (early.state() or {}).get("messages_received", 0) > 0,
        30,
        lambda: f"the resumed queue to arrive: {early.state()}",
    )
    await early.kill()
    assert early.handled() == []
    assert early.dead_letters() == [], "nothing is dead-lettered while the application starts up"
    # The one after that registers and must get all of it.
    last = consumer_process(broker.port, client_id, [("stream", topic)])
    await last.start()

    def seen() -> set[int]:
        return {payload["n"] for payload in last.handled("stream")}

    await poll(
        lambda: seen() == set(range(total)),
        60,
        lambda: f"every message: {total - len(seen())} of {total} missing; state {last.state()}",
        progress=lambda: len(seen()),
    )
