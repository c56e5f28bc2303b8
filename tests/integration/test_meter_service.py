"""The reference meter service end to end: embedded defaults and the real engines.

Each flow runs twice through the real app (in-process ASGI with its lifespan): once on
the embedded defaults (SQLite file, in-memory cache/bus/registry, amqtt broker started
in-process) and once on PostgreSQL + Redis + Mosquitto, namespaced by the session's
database, a Redis key prefix and an MQTT topic prefix. Every wait is a bounded poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("meter_service")

import httpx
from energy_common.logging import capture_logs
from energy_messaging import MQTTManager, MQTTMessage
from fastapi import FastAPI
from meter_service import MeterRuntime, MeterSettings, Reading, create_app
from sqlalchemy import func, select

# amqtt 0.12 warns about its own legacy configuration; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ENGINES = ["embedded", pytest.param("engines", marks=[pytest.mark.postgres, pytest.mark.redis, pytest.mark.mqtt])]


async def wait_for(condition: Callable[[], Awaitable[bool]], seconds: float = 15.0, what: str = "condition") -> None:
    """Poll ``condition`` until it is true, or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


def engine_settings(engines: dict[str, Any] | None, tmp_path: Path, **overrides: Any) -> MeterSettings:
    """Settings of one service instance: embedded defaults, or the real engines' values."""
    values: dict[str, Any] = {
        "tracing_exporter": "off",
        "admin_password": "correct horse battery staple",
        "jwt_secret_key": secrets.token_urlsafe(32),
        "simulator_id_prefix": f"m{uuid.uuid4().hex[:6]}-",
        "command_timeout": 10,
        "database_url": None,
        "redis_url": None,
        "mqtt_url": None,
        "data_dir": tmp_path / "data",
        **(engines or {}),
    }
    values.update(overrides)
    return MeterSettings(**values)


@pytest.fixture
def real_engines(
    postgres_url: str,
    redis_url: str,
    redis_key_prefix: str,
    mqtt_broker: Any,
    mqtt_topic_prefix: str,
    *,
    redis_client: Any,
) -> dict[str, Any]:
    """Settings values for PostgreSQL, Redis and Mosquitto, namespaced for this test.

    ``redis_client`` (conftest) deletes the keys under ``redis_key_prefix`` afterwards.
    """
    return {
        "database_url": postgres_url,
        "redis_url": redis_url,
        "redis_key_prefix": redis_key_prefix,
        "mqtt_url": mqtt_broker.url,
        "mqtt_topic_root": f"{mqtt_topic_prefix}/devices",
        "mqtt_share_group": f"g{uuid.uuid4().hex[:8]}",
    }


@pytest.fixture(params=ENGINES)
def engines(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    """None for the embedded defaults, else the real engines' settings values."""
    if request.param == "embedded":
        return None
    return dict(request.getfixturevalue("real_engines"))


@dataclass
class Service:
    """A running service and an HTTP client for it."""

    app: FastAPI
    runtime: MeterRuntime
    client: httpx.AsyncClient
    settings: MeterSettings

    async def token(self, password: str = "correct horse battery staple") -> str:
        """Log in as the seeded admin and return the access token."""
        response = await self.client.post("/api/v1/auth/token", json={"username": "admin", "password": password})
        assert response.status_code == 200, response.text
        return str(response.json()["data"]["access_token"])

    def mqtt_client(self) -> MQTTManager:
        """A separate MQTT client on the service's broker."""
        return MQTTManager(self.runtime.mqtt.host, self.runtime.mqtt.port, protocol=self.runtime.mqtt_protocol)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(settings: MeterSettings) -> AsyncIterator[Service]:
    """Start the app's lifespan and give an in-process HTTP client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meter.test", timeout=30) as client:
            yield Service(app, app.state.meter, client, settings)


@pytest.fixture
async def service(engines: dict[str, Any] | None, tmp_path: Path) -> AsyncIterator[Service]:
    """The service with 3 simulated meters, on the embedded defaults or the real engines."""
    settings = engine_settings(
        engines,
        tmp_path,
        simulator_enabled=True,
        simulator_meters=3,
        simulator_interval=0.2,
        write_rate_limit=3,
    )
    async with running(settings) as svc:
        yield svc


async def test_simulator_telemetry_reaches_the_readings_api(service: Service) -> None:
    """Readings published by the simulated meters are stored, paginated, cached and summarised."""
    headers = {"Authorization": f"Bearer {await service.token()}"}
    meter = f"{service.settings.simulator_id_prefix}001"

    async def enough() -> bool:
        response = await service.client.get(f"/api/v1/devices/{meter}/readings", params={"limit": 2}, headers=headers)
        return response.status_code == 200 and response.json()["meta"]["total"] >= 4

    await wait_for(enough, what="4 stored readings")
    body = (await service.client.get(f"/api/v1/devices/{meter}/readings?limit=2", headers=headers)).json()
    assert body["success"] is True
    assert len(body["data"]) == 2
    assert body["meta"]["has_next"] is True
    first, second = body["data"]
    assert first["device_id"] == meter
    assert first["ts"] > second["ts"]
    assert first["power_w"] >= 0
    device = (await service.client.get(f"/api/v1/devices/{meter}", headers=headers)).json()["data"]
    assert device["status"] == "online"
    assert device["latest"]["ts"] >= first["ts"]
    days = (await service.client.get(f"/api/v1/devices/{meter}/summary", headers=headers)).json()["data"]
    assert len(days) == 1
    assert days[0]["readings"] >= 4
    assert days[0]["peak_w"] >= first["power_w"]
    listed = (await service.client.get("/api/v1/devices", headers=headers)).json()
    assert {d["device_id"] for d in listed["data"]} >= {meter}
    assert listed["meta"]["total"] >= 3
    assert service.runtime.ingestor.stats.stored >= 4


async def test_a_command_round_trips_with_the_request_id(service: Service) -> None:
    """A command goes to the meter over MQTT and back; the meter's log line carries the HTTP request id."""
    headers = {"Authorization": f"Bearer {await service.token()}", "X-Request-ID": f"req-{uuid.uuid4().hex[:12]}"}
    meter = f"{service.settings.simulator_id_prefix}002"
    with capture_logs("INFO") as logs:
        response = await service.client.post(
            f"/api/v1/devices/{meter}/commands", json={"command": "read_meter"}, headers=headers
        )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["device_id"] == meter
    assert data["result"]["power_w"] >= 0
    assert response.headers["X-Request-ID"] == headers["X-Request-ID"]
    device_side = [line for line in logs if line["logger"] == "meter_service.simulator"]
    assert device_side
    assert device_side[0]["correlation_id"] == headers["X-Request-ID"]
    commands = [line for line in logs if line["logger"] == "meter_service" and line.get("device_id") == meter]
    assert [line["message"].rsplit(" ", 1)[-1] for line in commands] == ["queued", "sent", "succeeded"]
    assert {line["correlation_id"] for line in commands} == {headers["X-Request-ID"]}

    unknown = await service.client.post(
        f"/api/v1/devices/{meter}/commands", json={"command": "self_destruct"}, headers=headers
    )
    assert unknown.status_code >= 400
    assert unknown.json()["success"] is False


async def test_bad_payloads_are_dead_lettered(service: Service) -> None:
    """Telemetry that is not JSON or not a reading goes to the dead-letter topic and is not stored."""
    letters: list[dict[str, Any]] = []
    root = service.settings.mqtt_topic_root
    async with service.mqtt_client() as mqtt:

        async def collect(message: MQTTMessage) -> None:
            letters.append(message.payload)

        await mqtt.subscribe(service.settings.resolved_dead_letter_topic, collect)
        await mqtt.publish(f"{root}/bad-1/telemetry", b"{not json")
        await mqtt.publish(f"{root}/bad-1/telemetry", {"ts": "yesterday", "power_w": -5})

        async def two() -> bool:
            return len(letters) >= 2

        await wait_for(two, what="two dead letters")
    assert sorted(letter["reason"] for letter in letters) == ["decode_error", "validation_error"]
    assert service.runtime.dead_letters >= 2
    metrics = (await service.client.get("/metrics")).text
    assert 'meter_mqtt_dead_letters_total{reason="validation_error"' in metrics
    headers = {"Authorization": f"Bearer {await service.token()}"}
    stored = await service.client.get("/api/v1/devices/bad-1/readings", headers=headers)
    assert stored.status_code == 404  # never registered: unknown, like GET /devices/bad-1
    async with service.runtime.db.session() as session:
        count = select(func.count()).select_from(Reading).where(Reading.device_id == "bad-1")
        assert (await session.execute(count)).scalar_one() == 0


async def test_auth_and_rate_limits_answer_401_403_429(service: Service) -> None:
    """No token 401, wrong password 401, missing permission 403, over the write limit 429."""
    anonymous = await service.client.get("/api/v1/devices")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await service.client.post("/api/v1/auth/token", json={"username": "admin", "password": "nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["error_code"] == "INVALID_CREDENTIALS"
    viewer = service.runtime.tokens.create_access_token({"sub": "viewer", "permissions": ["devices:read"]})
    forbidden = await service.client.post(
        "/api/v1/devices", json={"device_id": "x-1"}, headers={"Authorization": f"Bearer {viewer}"}
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["details"]["required"]
    admin = {"Authorization": f"Bearer {await service.token()}"}
    codes = []
    for index in range(4):
        answer = await service.client.post("/api/v1/devices", json={"device_id": f"new-{index}"}, headers=admin)
        codes.append(answer.status_code)
    assert codes == [201, 201, 201, 429]
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.json()["error"]["error_code"] == "RATE_LIMIT_EXCEEDED"


async def test_health_and_metrics(service: Service) -> None:
    """Liveness and readiness (database, cache, MQTT) answer 200; /metrics counts stored readings."""
    live = await service.client.get("/health/live")
    ready = await service.client.get("/health/ready")
    assert live.status_code == 200
    assert ready.status_code == 200
    assert set(ready.json()["data"]["checks"]) == {"database", "cache", "mqtt"}

    async def counted() -> bool:
        return "meter_readings_stored_total" in (await service.client.get("/metrics")).text

    await wait_for(counted, what="the stored-readings counter")


async def test_one_server_span_per_request(tmp_path: Path) -> None:
    """Each request records exactly one span: the energy-monitoring middleware's server span."""
    from energy_monitoring.testing import capture_spans
    from opentelemetry.trace import SpanKind

    async with running(engine_settings(None, tmp_path)) as svc:
        headers = {"Authorization": f"Bearer {await svc.token()}"}
        with capture_spans() as exporter:
            for _ in range(3):
                assert (await svc.client.get("/api/v1/devices", headers=headers)).status_code == 200
            spans = exporter.get_finished_spans()
    assert [(span.kind, (span.attributes or {}).get("url.path")) for span in spans] == [
        (SpanKind.SERVER, "/api/v1/devices")
    ] * 3
    assert {span.instrumentation_scope.name for span in spans if span.instrumentation_scope} == {
        "energy_monitoring.http"
    }


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.mqtt
async def test_readiness_follows_a_private_redis(
    real_engines: dict[str, Any], tmp_path: Path, redis_server_factory: Callable[[], Any]
) -> None:
    """Readiness answers 503 while the service's own Redis is stopped and 200 again once it is back."""
    redis = redis_server_factory()
    settings = engine_settings(real_engines, tmp_path, redis_url=f"redis://127.0.0.1:{redis.port}/0")
    async with running(settings) as svc:

        def ready_is(code: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return (await svc.client.get("/health/ready")).status_code == code

            return check

        assert (await svc.client.get("/health/ready")).status_code == 200
        redis.stop()
        await wait_for(ready_is(503), 20, "readiness 503 with Redis stopped")
        body = (await svc.client.get("/health/ready")).json()
        assert body["error"]["error_code"] == "SERVICE_UNAVAILABLE"
        redis.start()
        await wait_for(ready_is(200), 30, "readiness 200 with Redis back")


@pytest.mark.postgres
@pytest.mark.mqtt
async def test_two_replicas_on_a_shared_subscription_store_every_reading_once(
    real_engines: dict[str, Any], tmp_path: Path
) -> None:
    """Two replicas split a shared subscription on Mosquitto; each reading is stored exactly once."""
    first = engine_settings(real_engines, tmp_path, redis_url=None, ingest_max_delay=0.02)
    second = first.model_copy()
    meters, per_meter = 20, 15
    prefix = f"r{uuid.uuid4().hex[:6]}-"
    async with MeterRuntime(first) as one, MeterRuntime(second) as two:
        for replica in (one, two):  # in-memory registries: only registered meters are ingested
            for meter in range(meters):
                await replica.devices.register_device(f"{prefix}{meter}", "meter")
        async with MQTTManager(one.mqtt.host, one.mqtt.port) as publisher:
            base = int(time.time() * 1000)
            root = first.mqtt_topic_root
            sends = [
                publisher.publish(
                    f"{root}/{prefix}{meter}/telemetry", {"ts": base + n, "power_w": 100.0 + n, "energy_kwh": n / 1000}
                )
                for meter in range(meters)
                for n in range(per_meter)
            ]
            await asyncio.gather(*sends)
            # A redelivery (same meter, same ts) must not be stored again.
            await publisher.publish(f"{root}/{prefix}0/telemetry", {"ts": base, "power_w": 100.0})

            async def all_stored() -> bool:
                stats = one.ingestor.stats.received + two.ingestor.stats.received
                return stats >= meters * per_meter + 1

            await wait_for(all_stored, 30, "every reading received")

            async def all_committed() -> bool:
                stats = [one.ingestor.stats, two.ingestor.stats]
                return sum(s.stored + s.duplicates for s in stats) >= meters * per_meter + 1

            # The last batches commit after they were received; a loaded machine can take a while.
            await wait_for(all_committed, 30, "every received reading committed or counted a duplicate")
        async with one.db.session() as session:
            where = Reading.device_id.like(f"{prefix}%")
            total = (await session.execute(select(func.count()).where(where))).scalar_one()
            pairs = select(Reading.device_id, Reading.ts).where(where).distinct().subquery()
            keys = (await session.execute(select(func.count()).select_from(pairs))).scalar_one()
    assert total == keys == meters * per_meter
    assert one.ingestor.stats.stored > 0, "the shared subscription split the load"
    assert two.ingestor.stats.stored > 0, "the shared subscription split the load"
    assert one.ingestor.stats.stored + two.ingestor.stats.stored == meters * per_meter
    assert one.ingestor.stats.duplicates + two.ingestor.stats.duplicates == 1


async def test_a_batch_with_redelivered_readings_stores_and_announces_only_the_new_ones(
    engines: dict[str, Any] | None, tmp_path: Path
) -> None:
    """Readings already stored are skipped; only the new ones of the batch count and get an event."""
    settings = engine_settings(engines, tmp_path, ingest_max_delay=0.5)
    prefix = f"x{uuid.uuid4().hex[:6]}-"
    async with running(settings) as svc:
        stats = svc.runtime.ingestor.stats
        base = int(time.time() * 1000)
        for meter in (0, 1):  # only registered meters are ingested
            await svc.runtime.devices.register_device(f"{prefix}{meter}", "meter")
        async with svc.mqtt_client() as publisher:

            async def send(numbers: range) -> None:
                topic = settings.mqtt_topic_root + "/" + prefix + "{}/telemetry"
                await asyncio.gather(
                    *(publisher.publish(topic.format(n % 2), {"ts": base + n, "power_w": float(n)}) for n in numbers)
                )

            def settled(count: int) -> Callable[[], Awaitable[bool]]:
                async def check() -> bool:
                    return stats.stored + stats.duplicates >= count and stats.events >= stats.stored

                return check

            await send(range(6))
            await wait_for(settled(6), what="the first 6 readings stored")
            await send(range(3, 10))  # 3 of them stored already, 4 new
            await wait_for(settled(13), what="the second batch settled")
        async with svc.runtime.db.session() as session:
            where = Reading.device_id.like(f"{prefix}%")
            total = (await session.execute(select(func.count()).where(where))).scalar_one()
    assert total == 10
    assert (stats.stored, stats.duplicates, stats.events) == (10, 3, 10)


async def test_bad_requests_get_clear_errors(service: Service) -> None:
    """Bad ranges, ids and bodies are refused with the standard error envelope, never a 500."""
    headers = {"Authorization": f"Bearer {await service.token()}"}
    meter = f"{service.settings.simulator_id_prefix}001"
    backwards = await service.client.get(
        f"/api/v1/devices/{meter}/readings",
        params={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
        headers=headers,
    )
    assert backwards.status_code == 400
    assert backwards.json()["error"]["details"]["field"] == "start"
    wildcard = await service.client.get("/api/v1/devices/a+b/readings", headers=headers)
    assert wildcard.status_code in {400, 422}
    assert wildcard.json()["success"] is False
    extra = await service.client.post(
        f"/api/v1/devices/{meter}/commands", json={"command": "ping", "sudo": True}, headers=headers
    )
    assert extra.status_code in {400, 422}
    unknown = await service.client.get("/api/v1/devices/nobody-here", headers=headers)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["error_code"] == "RESOURCE_NOT_FOUND"
    # The device manager does not also subscribe to the telemetry filter: ingestion, status, replies
    # (and on a real broker its dropped-messages counter).
    assert service.runtime.mqtt.state.subscriptions == 3 + (service.runtime.broker_drops is not None)


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"environment": "production", "simulator_enabled": True, "jwt_secret_key": "x" * 40}, "SIMULATOR_ENABLED"),
        ({"environment": "production"}, "JWT_SECRET_KEY"),
        ({"mqtt_url": "http://broker:1883"}, "MQTT_URL"),
        ({"ingest_batch_size": 0}, "INGEST_BATCH_SIZE"),
        ({"command_timeout": 5e-324}, "COMMAND_TIMEOUT"),
        ({"simulator_interval": 5e-324}, "SIMULATOR_INTERVAL"),
    ],
)
def test_unsafe_or_invalid_settings_are_refused(values: dict[str, Any], variable: str) -> None:
    """Settings that are invalid, or unsafe in production, raise a ConfigurationError naming the variable."""
    from energy_common.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        MeterSettings(**values)
    assert variable in info.value.message
