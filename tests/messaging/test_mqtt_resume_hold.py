"""The resume hold: on a resumed session, a message without a handler waits (unacknowledged) for one, then dead-letters.

Each test leaves a persistent session with QoS 1 messages queued on the shared broker,
then comes back with the same client id and checks what the grace period does.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from energy_messaging.mqtt import DeadLetter, MQTTManager, MQTTMessage

pytestmark = pytest.mark.mqtt

WaitUntil = Callable[..., Awaitable[None]]
COUNT = 30


async def queue_for(make_manager: Callable[..., MQTTManager], client_id: str, topic: str) -> None:
    """Leave a session for ``client_id`` subscribed to ``topic`` and queue COUNT QoS 1 messages in it."""

    async def handler(message: MQTTMessage) -> None:
        """Takes nothing: the session was left before anything was sent."""

    async with make_manager(client_id=client_id) as first:
        await first.subscribe(topic, handler, qos=1)
    async with make_manager() as publisher:
        for n in range(COUNT):
            await publisher.publish(topic, {"n": n}, qos=1, wait=False)
        await asyncio.wait_for(publisher.flush(), 10)


@pytest.fixture
def client_id() -> str:
    """A client id unique to the test (its session is left on the shared broker)."""
    return f"hold-{uuid.uuid4().hex[:10]}"


async def test_connect_then_subscribe_receives_the_held_queue(
    make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str, client_id: str, wait_until: WaitUntil
) -> None:
    """The seed's order: the queue arrives before the handler, waits in the hold, and is handled once it is registered."""
    topic = f"{mqtt_topic_prefix}/queued"
    await queue_for(make_manager, client_id, topic)
    got: list[int] = []

    async def handler(message: MQTTMessage) -> None:
        got.append(message.payload["n"])

    async with make_manager(client_id=client_id, resume_grace=10) as mqtt:
        await wait_until(lambda: mqtt.state.held_messages > 0, 5)
        assert mqtt.state.session_present
        assert got == []
        await mqtt.subscribe(topic, handler, qos=1)
        await wait_until(lambda: sorted(got) == list(range(COUNT)), 10)
        assert mqtt.state.dead_letters == 0
        assert mqtt.state.held_messages == 0


async def test_after_the_grace_period_unrouted_messages_are_no_handler_dead_letters(
    make_manager: Callable[..., MQTTManager],
    mqtt_topic_prefix: str,
    client_id: str,
    wait_until: WaitUntil,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nobody registers: after ``resume_grace`` every message is a counted no_handler dead letter, logged once, and acked."""
    topic = f"{mqtt_topic_prefix}/orphan"
    await queue_for(make_manager, client_id, topic)
    letters: list[DeadLetter] = []
    with caplog.at_level(logging.WARNING, logger="energy_messaging.mqtt"):
        async with make_manager(client_id=client_id, resume_grace=0.5, on_dead_letter=letters.append) as mqtt:
            started = time.monotonic()
            await wait_until(lambda: len(letters) == COUNT, 10)
            assert time.monotonic() - started >= 0.4  # they waited for the grace period
            assert mqtt.state.dead_letter_reasons == {"no_handler": COUNT}
            assert mqtt.state.dead_letters == COUNT
    assert {letter.reason for letter in letters} == {"no_handler"}
    assert sorted(int(letter.raw.decode().split(":")[1].rstrip("}")) for letter in letters) == list(range(COUNT))
    assert len([r for r in caplog.records if "has no handler" in r.getMessage()]) == 1
    # They were acknowledged: the session holds none of them any more.
    async with make_manager(client_id=client_id, resume_grace=0.5, on_dead_letter=letters.append) as again:
        await asyncio.sleep(1.0)
        assert again.state.messages_received == 0


async def test_zero_grace_dead_letters_at_once(
    make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str, client_id: str, wait_until: WaitUntil
) -> None:
    """With ``resume_grace=0`` nothing is held: a resumed message without a handler is dead-lettered immediately."""
    topic = f"{mqtt_topic_prefix}/nohold"
    await queue_for(make_manager, client_id, topic)
    async with make_manager(client_id=client_id, resume_grace=0) as mqtt:
        await wait_until(lambda: mqtt.state.dead_letters == COUNT, 3)
        assert mqtt.state.held_messages == 0


async def test_stopping_during_the_hold_leaves_the_messages_for_the_next_run(
    make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str, client_id: str, wait_until: WaitUntil
) -> None:
    """A disconnect while messages are held returns promptly and acknowledges none: the next run receives them all."""
    topic = f"{mqtt_topic_prefix}/later"
    await queue_for(make_manager, client_id, topic)
    mqtt = make_manager(client_id=client_id, resume_grace=60)
    await mqtt.connect()
    await wait_until(lambda: mqtt.state.held_messages > 0, 5)
    started = time.monotonic()
    await mqtt.disconnect()
    assert time.monotonic() - started < 5
    assert mqtt.state.dead_letters == 0
    got: set[int] = set()

    async def handler(message: MQTTMessage) -> None:
        got.add(message.payload["n"])

    next_run = make_manager(client_id=client_id)
    await next_run.subscribe(topic, handler, qos=1)  # registered first this time
    async with next_run:
        await wait_until(lambda: got == set(range(COUNT)), 10)


async def test_reconnects_do_not_reopen_the_hold(
    mosquitto_factory: Callable[..., Any], mqtt_topic_prefix: str, wait_until: WaitUntil
) -> None:
    """Only the first connection holds: after a broker restart an unrouted message is a dead letter at once."""
    broker = mosquitto_factory()
    options: dict[str, Any] = {"reconnect_min_delay": 0.05, "reconnect_max_delay": 0.2, "resume_grace": 30}
    async with MQTTManager(broker.host, broker.port, client_id="hold-reconnect", **options) as mqtt:
        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(broker.start)
        await wait_until(lambda: mqtt.state.reconnect_count >= 1 and mqtt.is_connected, 15)
        assert mqtt.state.session_present
        async with MQTTManager(broker.host, broker.port) as other:
            # The broker only sends what this session subscribed; fake a stale route with a
            # subscription removed while the message is on its way.
            async def handler(message: MQTTMessage) -> None:
                """Removed again before the message arrives."""

            sub = await mqtt.subscribe(f"{mqtt_topic_prefix}/x", handler, qos=1)
            mqtt._router.remove(sub)  # the broker subscription stays, the route is gone
            await other.publish(f"{mqtt_topic_prefix}/x", {"n": 1}, qos=1)
            await wait_until(lambda: mqtt.state.dead_letters == 1, 5)
            assert mqtt.state.held_messages == 0
