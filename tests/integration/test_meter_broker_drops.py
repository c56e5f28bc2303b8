"""The meter service reports the broker dropping messages: /health/ready degraded, /health details, a metric."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("meter_service")

import httpx
from energy_messaging import MQTTManager, MQTTMessage
from meter_service import MeterSettings, create_app

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]


async def test_broker_drops_show_in_readiness_and_metrics(
    postgres_url: str, mosquitto_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """Another subscriber's overflowing broker queue makes the service's readiness degraded and counts the drops."""
    broker = mosquitto_factory(["max_inflight_messages 2", "max_queued_messages 5", "sys_interval 1"])
    settings = MeterSettings(
        tracing_exporter="off",
        admin_password="correct horse battery staple",
        jwt_secret_key=secrets.token_urlsafe(32),
        database_url=postgres_url,
        redis_url=None,
        mqtt_url=f"mqtt://127.0.0.1:{broker.port}",
        mqtt_topic_root=f"t{uuid.uuid4().hex[:6]}/devices",
        data_dir=tmp_path / "data",
    )
    release = asyncio.Event()

    async def stuck(message: MQTTMessage) -> None:
        await release.wait()

    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://meter.test") as client,
        MQTTManager(broker.host, broker.port, client_id="slow-consumer", max_queued_messages=1) as slow,
        MQTTManager(broker.host, broker.port) as publisher,
    ):
        drops = app.state.meter.broker_drops
        for _ in range(100):
            if drops.available:
                break
            await asyncio.sleep(0.1)
        ready = (await client.get("/health/ready")).json()["data"]
        assert ready["status"] == "healthy", ready
        report = (await client.get("/health")).json()["data"]
        assert report["checks"]["mqtt"]["details"]["broker_dropped"] == 0
        await slow.subscribe("other/stream", stuck, qos=1)
        for n in range(60):
            await publisher.publish("other/stream", {"n": n}, qos=1)
        for _ in range(100):
            ready = (await client.get("/health/ready")).json()["data"]
            if ready["status"] == "degraded":
                break
            await asyncio.sleep(0.1)
        assert (ready["status"], ready["checks"]["mqtt"]["status"]) == ("degraded", "degraded"), ready
        mqtt = (await client.get("/health")).json()["data"]["checks"]["mqtt"]
        assert mqtt["details"]["broker_dropped"] == drops.dropped > 0
        assert "max_queued_messages" in mqtt["error"]
        metrics = (await client.get("/metrics")).text
        assert f'meter_mqtt_broker_dropped_total{{service="{settings.service_name}"}} {float(drops.dropped)}' in metrics
        release.set()
