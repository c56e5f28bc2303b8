"""The meter service's command endpoints: 202 with the id, GET from any replica, cancel, Idempotency-Key.

Runs on the embedded defaults and on PostgreSQL + Redis + Mosquitto (the command store
is the service's database either way); the replica test runs two services on one
PostgreSQL database and one Mosquitto.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("meter_service")

import httpx
from energy_messaging.devices import status_payload
from meter_service import MeterSettings, create_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # amqtt's own legacy configuration

PASSWORD = "correct horse battery staple"
ENGINES = ["embedded", pytest.param("engines", marks=[pytest.mark.postgres, pytest.mark.redis, pytest.mark.mqtt])]


def settings_for(tmp_path: Path, engines: dict[str, Any] | None, **overrides: Any) -> MeterSettings:
    """One instance's settings: the embedded defaults or the real engines, with 2 simulated meters."""
    values: dict[str, Any] = {
        "tracing_exporter": "off",
        "admin_password": PASSWORD,
        "jwt_secret_key": secrets.token_urlsafe(32),
        "simulator_enabled": True,
        "simulator_meters": 2,
        "simulator_interval": 5,
        "simulator_id_prefix": f"c{uuid.uuid4().hex[:6]}-",
        "database_url": None,
        "redis_url": None,
        "mqtt_url": None,
        "data_dir": tmp_path / "data",
        **(engines or {}),
        **overrides,
    }
    return MeterSettings(**values)


@pytest.fixture(params=ENGINES)
def engines(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any] | None:
    """None for the embedded defaults, else settings values for the real engines (namespaced)."""
    if request.param == "embedded":
        return None
    request.getfixturevalue("redis_client")  # deletes the test's keys afterwards
    prefix = request.getfixturevalue("mqtt_topic_prefix")
    return {
        "database_url": request.getfixturevalue("postgres_url"),
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_key_prefix": request.getfixturevalue("redis_key_prefix"),
        "mqtt_url": request.getfixturevalue("mqtt_broker").url,
        "mqtt_topic_root": f"{prefix}/devices",
        "mqtt_share_group": f"g{uuid.uuid4().hex[:8]}",
    }


@contextlib.asynccontextmanager
async def client_of(settings: MeterSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan and a logged-in in-process client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meter.test", timeout=30) as client:
            token = await client.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
            client.headers["Authorization"] = f"Bearer {token.json()['data']['access_token']}"
            client.app = app  # type: ignore[attr-defined]
            yield client


async def until_state(client: httpx.AsyncClient, command_id: str, state: str, within: float = 15.0) -> dict[str, Any]:
    """Poll ``GET /commands/{id}`` until the command is in ``state``; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        response = await client.get(f"/api/v1/commands/{command_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        if data["state"] == state:
            return data
        if time.monotonic() > deadline:
            pytest.fail(f"command is {data['state']}, not {state}, after {within} s")
        await asyncio.sleep(0.05)


async def test_accepted_at_once_followed_and_idempotent(tmp_path: Path, engines: dict[str, Any] | None) -> None:
    """wait=false answers 202 with the id and Location; GET follows it to succeeded; a retried key returns it."""
    settings = settings_for(tmp_path, engines)
    meter = f"{settings.simulator_id_prefix}001"
    async with client_of(settings) as client:
        body = {"command": "ping", "wait": False, "timeout": 10}
        key = {"Idempotency-Key": f"req-{uuid.uuid4().hex}"}
        first = await client.post(f"/api/v1/devices/{meter}/commands", json=body, headers=key)
        assert first.status_code == 202, first.text
        command_id = first.json()["data"]["command_id"]
        assert first.headers["Location"] == f"/api/v1/commands/{command_id}"
        done = await until_state(client, command_id, "succeeded")
        assert done["result"] == {"pong": True}
        assert [step["state"] for step in done["history"]] == ["queued", "sent", "succeeded"]
        again = await client.post(f"/api/v1/devices/{meter}/commands", json=body, headers=key)
        assert again.status_code == 202
        assert again.json()["data"]["command_id"] == command_id
        assert again.json()["data"]["state"] == "succeeded"
        waited = await client.post(f"/api/v1/devices/{meter}/commands", json={"command": "ping"})
        assert waited.status_code == 200
        assert waited.json()["data"]["result"] == {"pong": True}
        assert len(waited.json()["data"]["command_id"]) == 32
        refused = await client.post(f"/api/v1/commands/{command_id}/cancel")
        assert refused.status_code == 409
        assert refused.json()["error"]["error_code"] == "COMMAND_NOT_CANCELLABLE"
        assert (await client.get(f"/api/v1/commands/{'0' * 32}")).status_code == 404
        assert (await client.get("/api/v1/commands/not-an-id")).status_code == 422
        bad_key = await client.post(f"/api/v1/devices/{meter}/commands", json=body, headers={"Idempotency-Key": ""})
        assert bad_key.status_code == 422


async def test_queued_command_is_cancelled_and_never_sent(tmp_path: Path, engines: dict[str, Any] | None) -> None:
    """A deliver_when_online command for an offline meter is 202 queued; cancel makes it cancelled."""
    settings = settings_for(tmp_path, engines)
    async with client_of(settings) as client:
        runtime = client.app.state.meter  # type: ignore[attr-defined]
        await runtime.devices.register_device("away", "meter")
        await runtime.mqtt.publish(f"{settings.mqtt_topic_root}/away/status", status_payload("offline", 1), retain=True)
        for _ in range(300):
            if (await runtime.devices.get_device("away")).status == "offline":
                break
            await asyncio.sleep(0.02)
        offline = await client.post("/api/v1/devices/away/commands", json={"command": "ping"})
        assert offline.status_code == 409
        body = {"command": "ping", "wait": False, "deliver_when_online": True, "expires_in": 600}
        queued = await client.post("/api/v1/devices/away/commands", json=body)
        assert queued.status_code == 202, queued.text
        assert queued.json()["data"]["state"] == "queued"
        command_id = queued.json()["data"]["command_id"]
        cancelled = await client.post(f"/api/v1/commands/{command_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["data"]["state"] == "cancelled"
        await runtime.mqtt.publish(f"{settings.mqtt_topic_root}/away/status", b"", retain=True)


@pytest.mark.postgres
@pytest.mark.mqtt
async def test_any_replica_reports_a_command(tmp_path: Path, postgres_url: str, mqtt_broker: Any) -> None:
    """A command accepted by one replica is reported by another (one PostgreSQL database, one Mosquitto)."""
    root = f"test/{uuid.uuid4().hex[:8]}/devices"
    shared = {"database_url": postgres_url, "mqtt_url": mqtt_broker.url, "mqtt_topic_root": root}
    shared["mqtt_share_group"] = f"g{uuid.uuid4().hex[:8]}"
    one = settings_for(tmp_path / "one", shared)
    two = settings_for(tmp_path / "two", shared, simulator_enabled=False)
    meter = f"{one.simulator_id_prefix}001"
    async with client_of(one) as first, client_of(two) as second:
        accepted = await first.post(f"/api/v1/devices/{meter}/commands", json={"command": "ping", "wait": False})
        assert accepted.status_code == 202, accepted.text
        done = await until_state(second, accepted.json()["data"]["command_id"], "succeeded")
    assert done["result"] == {"pong": True}
    assert secrets.compare_digest(done["device_id"], meter)
