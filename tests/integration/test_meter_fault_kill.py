"""A replica SIGKILLed mid-stream under an unpaced fleet, against a broker configured as documented.

The meter README's *Deployment: broker settings*: queues sized for the outage,
persistence on. The replica kills itself right after a batch is committed and before
its PUBACKs go out; restarted with the same client id it gets the whole session back,
stores what it had not, and suppresses what it had: 0 lost, 0 stored twice.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("meter_service")
pytest.importorskip("paho.mqtt.client")

import asyncpg

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.mqtt, pytest.mark.timeout(180)]

CHILD = str(Path(__file__).with_name("meter_fault_child.py"))
METERS, ROUNDS = 200, 100  # 20,000 readings


async def _child(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, CHILD, *args, stdout=asyncio.subprocess.PIPE)


async def _ready(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    assert line.strip() == b"ready", line


async def test_a_killed_replica_restarted_loses_nothing_and_stores_nothing_twice(
    postgres_url: str, mosquitto_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """SIGKILL after a commit, before its PUBACKs; the restart redelivers it: 0 lost, 0 twice, duplicates suppressed."""
    broker = mosquitto_factory(
        [
            "max_queued_messages 1000000",
            "max_queued_bytes 0",
            "max_inflight_messages 20",
            "autosave_on_changes true",
            "autosave_interval 10000",
        ]
    )
    prefix = f"k{uuid.uuid4().hex[:6]}-"
    root = f"fault{uuid.uuid4().hex[:6]}/devices"
    settings = json.dumps(
        {
            "database_url": postgres_url,
            "redis_url": None,
            "mqtt_url": f"mqtt://127.0.0.1:{broker.port}",
            "mqtt_topic_root": root,
            "mqtt_client_id": f"{prefix}replica",
            "tracing_exporter": "off",
            "admin_password": "correct horse battery staple",
            "jwt_secret_key": secrets.token_urlsafe(32),
            "data_dir": str(tmp_path / "data"),
            "ingest_max_delay": 0.02,
        }
    )
    dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    children: list[asyncio.subprocess.Process] = []
    try:
        first = await _child("replica", settings, "3", prefix, str(METERS))
        children.append(first)
        await _ready(first)
        publisher = await _child("publish", "127.0.0.1", str(broker.port), root, prefix, str(METERS), str(ROUNDS))
        children.append(publisher)
        assert await asyncio.wait_for(first.wait(), 60) == -9, "the replica killed itself after its 3rd batch"
        stored_at_kill = await conn.fetchval("SELECT count(*) FROM readings WHERE device_id LIKE $1", prefix + "%")
        assert 0 < stored_at_kill < METERS * ROUNDS
        await asyncio.sleep(1.0)  # the fleet keeps publishing; the broker queues for the dead session
        second = await _child("replica", settings, "0", prefix, str(METERS))
        children.append(second)
        await _ready(second)
        out, _ = await asyncio.wait_for(publisher.communicate(), 120)
        assert json.loads(out.decode().splitlines()[-1]) == {"published": METERS * ROUNDS, "acked": METERS * ROUNDS}
        deadline = time.monotonic() + 60
        total = 0
        while time.monotonic() < deadline:
            total = await conn.fetchval("SELECT count(*) FROM readings WHERE device_id LIKE $1", prefix + "%")
            if total >= METERS * ROUNDS:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # anything stored twice would show up now
        second.terminate()
        out, _ = await asyncio.wait_for(second.communicate(), 30)
        stats = json.loads(out.decode().splitlines()[-1])
        total = await conn.fetchval("SELECT count(*) FROM readings WHERE device_id LIKE $1", prefix + "%")
        distinct = await conn.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT device_id, ts FROM readings WHERE device_id LIKE $1) AS keys",
            prefix + "%",
        )
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
        await conn.close()
    assert (total, distinct) == (METERS * ROUNDS, METERS * ROUNDS), "0 lost, 0 stored twice"
    # The killed replica's committed but unacknowledged batch came back and was suppressed.
    assert stats["duplicates"] >= 1, stats
    assert stats["stored"] == METERS * ROUNDS - stored_at_kill
