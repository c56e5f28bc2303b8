"""Redis-only behaviour of the event bus: crashes, outages, stream bounds and wire format."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from energy_common.exceptions import MessagingConnectionError
from energy_messaging.events import Event, EventBusConnectionError

redis_streams = pytest.importorskip("energy_messaging.events.redis_streams")
RedisStreamsEventBus = redis_streams.RedisStreamsEventBus

FAST = {"min_idle": 0.2, "block": 0.1}

CONSUMER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from energy_messaging.events.redis_streams import RedisStreamsEventBus

    url, namespace, marker = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    async def main() -> None:
        bus = RedisStreamsEventBus(url, namespace=namespace, group="workers", consumer="doomed", block=0.1)

        @bus.subscribe("job.run")
        async def handle(event) -> None:
            marker.write_text(event.id)
            await asyncio.sleep(60)

        async with bus:
            await asyncio.sleep(60)

    asyncio.run(main())
    """
)

WaitUntil = Callable[..., Awaitable[None]]


async def test_consumer_killed_with_sigkill_mid_message_is_taken_over(
    wait_until: WaitUntil, redis_url: str, redis_key_prefix: str, redis_client: Any, tmp_path: Path
) -> None:
    """A consumer process killed (SIGKILL) while handling leaves the entry pending; another claims it."""
    namespace = f"{redis_key_prefix}events"
    marker = tmp_path / "handling"
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER_SCRIPT)
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), redis_url, namespace, str(marker))
    try:
        async with RedisStreamsEventBus(redis_url, namespace=namespace, group="workers", **FAST) as publisher:
            event = await publisher.publish("job.run", {"job": 1})
        await wait_until(marker.exists, within=30)
    finally:
        proc.kill()  # SIGKILL: no cleanup, no acknowledgement
        await asyncio.wait_for(proc.wait(), 10)
    assert marker.read_text() == event.id
    stream = f"{namespace}:stream:job.run"
    pending = await redis_client.xpending_range(stream, "workers", min="-", max="+", count=10)
    assert [p["consumer"] for p in pending] == [b"doomed"]

    seen: list[Event] = []

    async def handler(received: Event) -> None:
        seen.append(received)

    survivor = RedisStreamsEventBus(redis_url, namespace=namespace, group="workers", consumer="survivor", **FAST)
    survivor.subscribe("job.run", handler)
    async with survivor:
        await wait_until(lambda: len(seen) == 1)
    assert seen[0].id == event.id
    assert survivor.stats.redelivered == 1
    assert (await redis_client.xpending(stream, "workers"))["pending"] == 0


async def test_redis_down_gives_typed_error_and_consumer_recovers(
    wait_until: WaitUntil,
    redis_server_factory: Callable[[], Any],
) -> None:
    """With Redis killed, publish raises EventBusConnectionError; once it is back, consuming resumes."""
    server = redis_server_factory()
    url = f"redis://127.0.0.1:{server.port}/0"
    seen: list[Any] = []

    async def handler(event: Event) -> None:
        seen.append(event.data)

    bus = RedisStreamsEventBus(url, namespace="outage", **FAST)
    bus.subscribe("t.x", handler)
    async with bus:
        await bus.publish("t.x", "before")
        await wait_until(lambda: seen == ["before"])

        server.kill()
        with pytest.raises(EventBusConnectionError) as info:
            await bus.publish("t.x", "during")
        assert isinstance(info.value, MessagingConnectionError)
        assert info.value.error_code == "EVENT_BUS_UNAVAILABLE"
        assert info.value.status_code == 503
        assert url not in info.value.message
        await wait_until(lambda: not bus.stats.connected)

        server.start()  # a fresh, empty server: the stream and the group are gone
        await bus.publish("t.x", "after")
        await wait_until(lambda: seen == ["before", "after"], within=20)
        assert bus.stats.connected
        assert bus.stats.connection_errors >= 1


async def test_streams_are_bounded_with_approximate_maxlen(
    redis_url: str, redis_key_prefix: str, redis_client: Any
) -> None:
    """XADD trims with MAXLEN ~, so a stream stays near its bound instead of growing forever."""
    async with RedisStreamsEventBus(redis_url, namespace=f"{redis_key_prefix}events", maxlen=100) as bus:
        for i in range(500):
            await bus.publish("t.x", i)
        length = await redis_client.xlen(bus.stream_for("t.x"))
    assert 100 <= length < 500


async def test_entry_holds_one_cloudevents_json_field(redis_url: str, redis_key_prefix: str, redis_client: Any) -> None:
    """Each stream entry is one 'event' field holding the structured-mode CloudEvents JSON."""
    async with RedisStreamsEventBus(redis_url, namespace=f"{redis_key_prefix}events", source="urn:svc") as bus:
        event = await bus.publish("device.registered", {"device_id": "sensor001"}, correlation_id="req-1")
        entries = await redis_client.xrange(bus.stream_for("device.registered"))
    assert len(entries) == 1
    _, fields = entries[0]
    assert set(fields) == {b"event"}
    body = json.loads(fields[b"event"])
    assert body == {
        "specversion": "1.0",
        "id": event.id,
        "type": "device.registered",
        "source": "urn:svc",
        "time": body["time"],
        "datacontenttype": "application/json",
        "data": {"device_id": "sensor001"},
        "correlationid": "req-1",
    }
    assert body["time"].endswith("Z")


async def test_caller_owned_client_is_left_open(redis_url: str, redis_key_prefix: str, redis_client: Any) -> None:
    """A bus built on the caller's client does not close it on exit."""
    async with RedisStreamsEventBus(redis_client, namespace=f"{redis_key_prefix}events") as bus:
        await bus.publish("t.x", 1)
        assert bus.client is redis_client
    assert await redis_client.ping()
