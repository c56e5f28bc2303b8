"""Dead letters of the event bus and of MQTT: backoff, list, show, replay, purge, the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from energy_messaging import MQTTManager, MQTTMessage
from energy_messaging.deadletters import MQTTDeadLetterStore, check_ids, event_dead_letters
from energy_messaging.events import (
    DeadLetterNotFoundError,
    DeadLetterReplayError,
    Event,
    InMemoryEventBus,
    InMemoryIdempotencyStore,
    MemoryStreams,
    TransportEventBus,
    idempotent,
)
from energy_messaging.events._consumer import retry_delay

WaitUntil = Callable[..., Awaitable[None]]
FAST = {"min_idle": 0.1, "block": 0.05}


@pytest.fixture(params=["memory", "redis"])
def make_bus(request: pytest.FixtureRequest) -> Iterator[Callable[..., TransportEventBus]]:
    """Build buses of either backend (Redis keys under this test's prefix, deleted afterwards)."""
    if request.param == "memory":
        streams = MemoryStreams()
        yield lambda **options: InMemoryEventBus(streams, **{**FAST, **options})
        return
    from energy_messaging.events.redis_streams import RedisStreamsEventBus

    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_key_prefix")
    request.getfixturevalue("redis_client")  # deletes the prefix's keys at the end
    yield lambda **options: RedisStreamsEventBus(url, namespace=f"{prefix}events", **{**FAST, **options})


def test_retry_delay_grows_exponentially_and_is_capped() -> None:
    """The delay starts at min_idle, grows by the factor, stops at the cap and never goes below min_idle."""
    assert [retry_delay(0.5, 3.0, 10.0, d) for d in (1, 2, 3, 4, 5)] == [0.5, 1.5, 4.5, 10.0, 10.0]
    assert retry_delay(0.5, 3.0, 10.0, 3, jitter=1.0) == pytest.approx(4.5 * 0.8)
    assert retry_delay(0.5, 3.0, 10.0, 1, jitter=1.0) == 0.5
    assert retry_delay(1.0, 2.0, 0.1, 9) == 1.0  # a cap below min_idle: min_idle wins


async def test_failing_event_is_retried_with_growing_delays_then_dead_lettered(
    wait_until: WaitUntil, make_bus: Callable[..., TransportEventBus]
) -> None:
    """Each redelivery of a failing event waits longer than the one before, then it is dead-lettered."""
    times: list[float] = []

    async def always_fails(event: Event) -> None:
        times.append(time.monotonic())
        raise RuntimeError("poison")

    async with make_bus(group="svc", max_deliveries=3, retry_backoff=3.0) as bus:
        bus.subscribe("meter.poison", always_fails)
        await bus.publish("meter.poison", {"n": 1})
        queue = event_dead_letters(bus)
        letters: list[Any] = []

        async def dead_lettered() -> None:
            letters[:] = await queue.list()

        for _ in range(400):
            await dead_lettered()
            if letters:
                break
            await asyncio.sleep(0.01)
    assert len(times) == 3
    first, second = times[1] - times[0], times[2] - times[1]
    assert first >= 0.1 * 0.99
    assert second >= 0.3 * 0.8 * 0.99  # min_idle * 3, less the jitter
    assert second > first * 1.5
    assert len(letters) == 1
    assert letters[0].reason.startswith("handler failed on delivery 3 of 3")
    assert letters[0].target == "meter.poison"
    assert letters[0].deliveries == 3


async def test_poison_event_replayed_after_the_fix_is_processed_once(
    wait_until: WaitUntil, make_bus: Callable[..., TransportEventBus]
) -> None:
    """A dead-lettered event replayed once its handler is fixed is processed exactly once."""
    broken = True
    processed: list[str] = []

    @idempotent(InMemoryIdempotencyStore(), namespace="billing")
    async def handler(event: Event) -> None:
        if broken:
            raise ValueError("bug in the handler")
        processed.append(event.id)

    async with make_bus(group="billing", max_deliveries=2) as bus:
        bus.subscribe("reading.recorded", handler)
        sent = await bus.publish("reading.recorded", {"meter": "m1"})
        queue = event_dead_letters(bus)
        found: list[Any] = []
        for _ in range(400):
            found = await queue.list()
            if found:
                break
            await asyncio.sleep(0.01)
        assert len(found) == 1
        assert found[0].payload is not None
        assert sent.id.encode() in found[0].payload
        broken = False
        assert await queue.replay([found[0].id]) == [found[0].id]
        await wait_until(lambda: processed == [sent.id])
        await asyncio.sleep(0.4)  # a second delivery would have happened by now
        assert processed == [sent.id]
        assert await queue.list() == []
        with pytest.raises(DeadLetterNotFoundError):
            await queue.get(found[0].id)


async def test_purge_removes_only_the_named_dead_letters(make_bus: Callable[..., TransportEventBus]) -> None:
    """Purging one id leaves the others; unknown ids count 0; a malformed id deletes nothing."""

    async def fails(event: Event) -> None:
        raise RuntimeError("no")

    async with make_bus(group="svc", max_deliveries=1) as bus:
        bus.subscribe("meter.bad", fails)
        for n in range(3):
            await bus.publish("meter.bad", {"n": n})
        queue = event_dead_letters(bus)
        letters: list[Any] = []
        for _ in range(400):
            letters = await queue.list()
            if len(letters) == 3:
                break
            await asyncio.sleep(0.01)
        assert len(letters) == 3
        ids = [letter.id for letter in letters]
        assert await queue.purge([ids[1]]) == 1
        assert [letter.id for letter in await queue.list()] == [ids[0], ids[2]]
        assert await queue.purge([ids[1]]) == 0
        with pytest.raises(DeadLetterNotFoundError):
            await queue.purge([ids[0], "not-an-id"])
        assert [letter.id for letter in await queue.list()] == [ids[0], ids[2]]
        assert [letter.id for letter in await queue.list(after=ids[0])] == [ids[2]]
        assert (await queue.get(ids[2])).summary()["payload"].startswith("{")


async def test_malformed_dead_letter_cannot_be_replayed_and_is_kept(make_bus: Callable[..., TransportEventBus]) -> None:
    """A dead letter whose payload is not an event fails to replay with a typed error and stays."""
    async with make_bus(group="svc") as bus:
        bus.subscribe("meter.x", lambda event: asyncio.sleep(0))
        await bus.stream_transport.append(bus.stream_for("meter.x"), {"event": b"not json"}, maxlen=100)
        queue = event_dead_letters(bus)
        letters: list[Any] = []
        for _ in range(400):
            letters = await queue.list()
            if letters:
                break
            await asyncio.sleep(0.01)
        assert letters[0].reason.startswith("malformed event")
        with pytest.raises(DeadLetterReplayError) as caught:
            await queue.replay([letters[0].id])
        assert caught.value.details["replayed"] == []
        assert [letter.id for letter in await queue.list()] == [letters[0].id]


def test_ids_are_checked() -> None:
    """Only stream ids are accepted as dead-letter ids."""
    assert check_ids(["1-0", "1700000000000-12"]) == ["1-0", "1700000000000-12"]
    for bad in ("", "1", "a-b", "1-0; DEL x", "-", "+"):
        with pytest.raises(DeadLetterNotFoundError):
            check_ids([bad])


async def test_mqtt_dead_letter_is_stored_exactly_and_replayed_to_its_topic(
    wait_until: WaitUntil,
    make_manager: Callable[..., MQTTManager],
    mqtt_topic_prefix: str,
    redis_client: Any,
    redis_key_prefix: str,
) -> None:
    """An MQTT message whose handler failed is stored byte for byte, and a replay reaches the fixed handler once."""
    from energy_messaging.events.redis_streams import RedisStreamsTransport

    store = MQTTDeadLetterStore(
        RedisStreamsTransport(redis_client, owns_client=False), stream=f"{redis_key_prefix}mqtt-dlq"
    )
    topic = f"{mqtt_topic_prefix}/meter/m1/telemetry"
    raw = b'{"power_w": 1}\xff\x00'  # not UTF-8: the dead-letter topic form would lose it
    broken = True
    received: list[bytes] = []

    async def handler(message: MQTTMessage) -> None:
        if broken:
            raise RuntimeError("bug")
        received.append(bytes(message.raw))

    async with make_manager(on_dead_letter=store.record) as mqtt:
        await mqtt.subscribe(topic, handler, qos=1, decode=False)
        await mqtt.publish(topic, raw, qos=1)
        queue = store.queue(mqtt)
        letters: list[Any] = []
        for _ in range(500):
            letters = await queue.list()
            if letters:
                break
            await asyncio.sleep(0.01)
        assert [(letter.target, letter.reason, letter.payload, letter.kind) for letter in letters] == [
            (topic, "handler_error", raw, "mqtt")
        ]
        assert letters[0].details["detail"] == "RuntimeError: bug"
        broken = False
        assert await queue.replay([letters[0].id]) == [letters[0].id]
        await wait_until(lambda: received == [raw])
        await asyncio.sleep(0.2)
        assert received == [raw]
        assert await queue.list() == []
    with pytest.raises(DeadLetterReplayError):
        await _replay_without_publisher(store)


async def _replay_without_publisher(store: MQTTDeadLetterStore) -> None:
    """Store one letter and replay it with no MQTT connection."""

    class Letter:
        topic, raw, reason, detail, filter, extra = "t/x", b"x", "handler_error", "E: x", None, {}

    await store.record(Letter())
    letter = (await store.queue().list())[-1]
    await store.queue().replay([letter.id])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "energy_messaging.deadletters", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
async def test_cli_lists_shows_replays_and_purges(redis_url: str, redis_key_prefix: str, redis_client: Any) -> None:
    """The command line lists, shows, purges and replays event-bus dead letters by id; a bad id exits 1."""
    from energy_messaging.events.redis_streams import RedisStreamsEventBus

    namespace = f"{redis_key_prefix}events"
    async with RedisStreamsEventBus(redis_url, namespace=namespace, max_deliveries=1, **FAST) as bus:

        async def fails(event: Event) -> None:
            raise RuntimeError("no")

        bus.subscribe("meter.cli", fails)
        for n in range(2):
            await bus.publish("meter.cli", {"n": n})
        for _ in range(400):
            if len(await event_dead_letters(bus).list()) == 2:
                break
            await asyncio.sleep(0.01)
    base = ("--redis", redis_url, "events", "--namespace", namespace)
    listed = await asyncio.to_thread(_cli, *base, "list")
    assert listed.returncode == 0, listed.stderr
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [json.loads(r["payload"])["data"]["n"] for r in records] == [0, 1]
    shown = await asyncio.to_thread(_cli, *base, "show", records[0]["id"])
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["id"] == records[0]["id"]
    purged = await asyncio.to_thread(_cli, *base, "purge", records[0]["id"])
    assert json.loads(purged.stdout) == {"purged": 1}
    replayed = await asyncio.to_thread(_cli, *base, "replay", records[1]["id"])
    assert json.loads(replayed.stdout) == {"replayed": [records[1]["id"]]}
    stream = await redis_client.xrange(f"{namespace}:stream:meter.cli")
    assert len(stream) == 3  # two originals and the replay
    missing = await asyncio.to_thread(_cli, *base, "show", records[0]["id"])
    assert missing.returncode == 1
    assert json.loads(missing.stderr)["error"] == "DEAD_LETTER_NOT_FOUND"
