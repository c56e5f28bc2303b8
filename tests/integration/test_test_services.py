"""Tests of the shared fixture layer itself: each real engine is reachable and isolated."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest


async def test_postgres_database_is_private(postgres_database: Any) -> None:
    """The session database exists under its own generated name, not the admin database.

    (Other tests of the session may already have created tables in it, so its contents
    are not checked here.)
    """
    import asyncpg

    conn = await asyncpg.connect(postgres_database.dsn, timeout=10)
    try:
        name = await conn.fetchval("SELECT current_database()")
        owner_dbs = await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", postgres_database.name)
    finally:
        await conn.close()
    assert name == postgres_database.name
    assert name.startswith("energy_test_")
    assert name != "postgres"
    assert owner_dbs == 1


async def test_redis_prefix_is_cleaned(redis_client: Any, redis_key_prefix: str) -> None:
    """Keys written under the test prefix are visible to this test."""
    await redis_client.set(f"{redis_key_prefix}k", "v")
    assert await redis_client.get(f"{redis_key_prefix}k") == b"v"


def test_mqtt_broker_answers_connect(mqtt_broker: Any) -> None:
    """The broker accepts an MQTT 3.1.1 CONNECT and answers CONNACK with return code 0."""
    client_id = f"probe-{uuid.uuid4().hex[:8]}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x0a"
    payload = len(client_id).to_bytes(2, "big") + client_id
    body = variable + payload
    packet = b"\x10" + bytes([len(body)]) + body
    with socket.create_connection((mqtt_broker.host, mqtt_broker.port), timeout=5) as sock:
        sock.sendall(packet)
        assert sock.recv(4) == b"\x20\x02\x00\x00"


async def test_private_redis_stops_and_restarts(redis_server_factory: Any) -> None:
    """A private redis-server can be killed and started again on its port."""
    import redis.asyncio as redis_asyncio

    server = redis_server_factory()
    client = redis_asyncio.Redis(host="127.0.0.1", port=server.port)
    assert await client.ping()
    server.kill()
    with pytest.raises(redis_asyncio.ConnectionError):
        await client.ping()
    server.start()
    assert await client.ping()
    await client.aclose()


def test_private_mosquitto_starts(mosquitto_factory: Any) -> None:
    """A private Mosquitto broker listens on its own port and stops gracefully."""
    broker = mosquitto_factory()
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5):
        pass
    broker.stop()
    assert broker.process is not None
    assert broker.process.returncode is not None
