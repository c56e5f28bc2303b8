"""Tests for the device credential stores: memory, Redis, SQLite and PostgreSQL, same bodies."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from energy_auth.devices import (
    CertificateRecord,
    DeviceCredential,
    DeviceCredentialStore,
    DeviceSecret,
    InMemoryDeviceCredentialStore,
)
from energy_common.exceptions import ValidationError


@pytest.fixture(params=["memory", "redis", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """``(kind, url)`` of each store implementation; the servers' fixtures run outside the loop."""
    kind: str = request.param
    if kind == "redis":
        return kind, request.getfixturevalue("redis_url")
    if kind == "postgres":
        return kind, request.getfixturevalue("postgres_url")
    return kind, f"sqlite+aiosqlite:///{tmp_path / 'creds.db'}"


@pytest.fixture
async def store(backend: tuple[str, str]) -> AsyncIterator[DeviceCredentialStore]:
    """Each store implementation, empty (Redis under a unique prefix, SQL on a fresh table)."""
    kind, url = backend
    if kind == "memory":
        yield InMemoryDeviceCredentialStore()
        return
    if kind == "redis":
        redis_asyncio = pytest.importorskip("redis.asyncio")
        from energy_auth.devices.redis import RedisDeviceCredentialStore

        client = redis_asyncio.from_url(url)
        prefix = f"test:{uuid.uuid4().hex[:8]}:"
        try:
            yield RedisDeviceCredentialStore(client, key_prefix=prefix)
        finally:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()
        return
    pytest.importorskip("sqlalchemy")
    from energy_auth.devices.sql import SQLDeviceCredentialStore, device_credentials_metadata
    from energy_common.database import Database

    database = Database(url)
    sql_store = SQLDeviceCredentialStore(database)
    await database.drop_all(device_credentials_metadata)
    await sql_store.create_table()
    try:
        yield sql_store
    finally:
        await database.drop_all(device_credentials_metadata)
        await database.dispose()


def credential(device_id: str, **changes: Any) -> DeviceCredential:
    """A stored-shape credential with one secret (the hash is a stand-in string)."""
    base = DeviceCredential(
        device_id,
        "meter",
        (DeviceSecret("0a1b2c3d", "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA", 100.0),),
        100.0,
        100.0,
        certificate=CertificateRecord("1f", "ab" * 32, 2_000_000_000.0),
    )
    return dataclasses.replace(base, **changes)


async def test_create_get_round_trip(store: DeviceCredentialStore) -> None:
    """A created credential reads back equal, hashes and certificate included."""
    record = credential("m1")
    assert await store.create(record) is True
    assert await store.get("m1") == record
    assert await store.get("m2") is None


async def test_create_refuses_an_existing_device(store: DeviceCredentialStore) -> None:
    """A second create for the same device writes nothing and says so."""
    await store.create(credential("m1"))
    assert await store.create(credential("m1", role="other")) is False
    stored = await store.get("m1")
    assert stored is not None
    assert stored.role == "meter"


async def test_replace_only_at_the_read_version(store: DeviceCredentialStore) -> None:
    """replace lands at the expected version and refuses a stale one or a missing record."""
    await store.create(credential("m1"))
    newer = credential("m1", version=2, revoked_at=150.0, secrets=())
    assert await store.replace(newer, expected_version=1) is True
    assert await store.get("m1") == newer
    assert await store.replace(credential("m1", version=3), expected_version=1) is False
    assert await store.get("m1") == newer
    assert await store.replace(credential("ghost", version=2), expected_version=1) is False
    assert await store.get("ghost") is None


async def test_delete(store: DeviceCredentialStore) -> None:
    """delete removes the record (and its listing entry) once."""
    await store.create(credential("m1"))
    assert await store.delete("m1") is True
    assert await store.delete("m1") is False
    assert await store.get("m1") is None
    assert await store.list() == []


async def test_list_pages_in_device_order_without_hashes(store: DeviceCredentialStore) -> None:
    """Listing pages by device id (byte order) and never carries a secret hash."""
    ids = ["m-10", "m-2", "M-1", "m.1", "m_1", "a"]
    for device_id in ids:
        await store.create(credential(device_id))
    first = await store.list(limit=4)
    rest = await store.list(after=first[-1].device_id, limit=4)
    assert [i.device_id for i in first + rest] == sorted(ids)
    assert not hasattr(first[0], "secret_hash")
    assert "argon2" not in repr(first + rest)
    assert first[0].secrets == (("0a1b2c3d", 100.0, None),)
    assert first[0].certificate == CertificateRecord("1f", "ab" * 32, 2_000_000_000.0)


@pytest.mark.parametrize("limit", [0, 1001, -1, True])
async def test_list_refuses_bad_limits(store: DeviceCredentialStore, limit: int) -> None:
    """A limit outside 1..1000 is a ValidationError, on every store."""
    with pytest.raises(ValidationError):
        await store.list(limit=limit)


async def test_records_repr_hides_hashes() -> None:
    """The repr of a stored credential does not show the hash."""
    assert "argon2" not in repr(credential(f"m-{uuid.uuid4().hex[:6]}"))
