"""The meter service on Mosquitto with dynamic security: registration returns credentials, the broker enforces them.

End to end on a private Mosquitto 2 (``mosquitto_dynamic_security.so``, one admin client
from ``bootstrap_config``): the service syncs the policy, logs in as ``svc:<name>``,
a meter registered through the API logs in with the returned credentials and its
telemetry is stored; it cannot act as another meter; deleting it disconnects it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("meter_service")

import httpx
from energy_messaging import MQTTManager
from energy_messaging.dynsec import bootstrap_config
from energy_messaging.errors import MessagingConnectionError, PublishError
from energy_messaging.simulator import DeviceSimulator
from meter_service import MeterSettings, create_app

from tests.conftest import unavailable

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")


@pytest.fixture
def dynsec_mosquitto(mosquitto_factory: Callable[..., Any], tmp_path: Path) -> tuple[Any, str]:
    """A private Mosquitto with dynamic security, anonymous refused; returns (server, admin password)."""
    if not PLUGIN.exists():
        unavailable(f"the dynamic-security plugin is not installed at {PLUGIN}")
    password = secrets.token_urlsafe(24)
    path = tmp_path / "dynamic-security.json"
    path.write_text(json.dumps(bootstrap_config("energy-admin", password)))
    server = mosquitto_factory(
        [f"plugin {PLUGIN}", f"plugin_opt_config_file {path}", "allow_anonymous false", "max_queued_messages 1000"]
    )
    return server, password


async def _until(condition: Callable[[], Any], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_registration_flow_on_dynamic_security(dynsec_mosquitto: tuple[Any, str], tmp_path: Path) -> None:
    """Register via the API → credentials once → the meter logs in, is stored, confined, answers; delete kicks it."""
    server, admin_password = dynsec_mosquitto
    settings = MeterSettings(
        tracing_exporter="off",
        admin_password="correct horse battery staple",
        jwt_secret_key=secrets.token_urlsafe(32),
        database_url=None,
        redis_url=None,
        data_dir=tmp_path / "data",
        mqtt_url=f"mqtt://127.0.0.1:{server.port}",
        mqtt_dynsec_admin_username="energy-admin",
        mqtt_dynsec_admin_password=admin_password,
        events_enabled=False,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime = app.state.meter
        assert runtime.mqtt.is_connected
        assert runtime.mqtt.options.username == f"svc:service:{runtime.mqtt.client_id}"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meter.test", timeout=30) as client:
            login = {"username": "admin", "password": "correct horse battery staple"}
            token = (await client.post("/api/v1/auth/token", json=login)).json()["data"]["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            created = await client.post(
                "/api/v1/devices", json={"device_id": "meter-a", "device_type": "meter"}, headers=auth
            )
            assert created.status_code == 201, created.text
            credentials = created.json()["data"]["credentials"]
            assert credentials["username"] == "meter-a"
            again = await client.post(
                "/api/v1/devices", json={"device_id": "meter-a", "device_type": "meter"}, headers=auth
            )
            assert again.json()["data"]["credentials"] is None  # shown once
            bad = await client.post(
                "/api/v1/devices", json={"device_id": "meter:a", "device_type": "meter"}, headers=auth
            )
            assert bad.status_code == 400

            meter = DeviceSimulator(
                "meter-a", "127.0.0.1", server.port, interval=0.1, client_id="meter-a", password=credentials["password"]
            )
            await meter.start()
            try:

                async def stored() -> bool:
                    response = await client.get("/api/v1/devices/meter-a/readings?limit=5", headers=auth)
                    return response.status_code == 200 and len(response.json()["data"]) > 0

                await _until(stored, 15, "meter-a's readings stored")
                with pytest.raises(PublishError):
                    await meter.mqtt.publish("devices/meter-b/telemetry", {"ts": 1, "power_w": 1.0})
                command = await client.post("/api/v1/devices/meter-a/commands", json={"command": "ping"}, headers=auth)
                assert command.status_code == 200, command.text
                assert command.json()["data"]["result"] == {"pong": True}
                deleted = await client.delete("/api/v1/devices/meter-a", headers=auth)
                assert deleted.status_code == 200

                async def kicked() -> bool:
                    return not meter.mqtt.is_connected

                await _until(kicked, 5, "the deleted meter disconnected")
            finally:
                await meter.kill()  # a kicked meter cannot say goodbye: stop() would wait for a reconnect
            with pytest.raises(MessagingConnectionError):
                await MQTTManager(
                    "127.0.0.1", server.port, username="meter-a", password=credentials["password"], connect_timeout=1.0
                ).connect()
