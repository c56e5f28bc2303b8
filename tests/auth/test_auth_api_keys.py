"""Tests for API keys: generation, hashed storage, constant-time check, expiry."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from energy_auth import (
    APIKeyAuthenticator,
    APIKeyStore,
    InMemoryAPIKeyStore,
    InvalidAPIKeyError,
    generate_api_key,
    hash_api_key,
)

from .conftest import Clock


def test_generated_key_is_high_entropy_and_stored_hashed() -> None:
    """A key has 256 random bits; the record holds only its SHA-256, and repr hides the key."""
    new = generate_api_key("sensor-001", permissions=["readings:write"])
    prefix, key_id, secret_part = new.key.split("_", 2)
    assert prefix == "ek"
    assert len(key_id) == 16
    assert len(secret_part) >= 43
    assert new.record.key_hash == hashlib.sha256(new.key.encode()).hexdigest()
    assert new.key not in repr(new)
    assert new.key not in repr(new.record)
    assert generate_api_key("sensor-001").key != new.key


def test_pepper_makes_it_an_hmac() -> None:
    """With a pepper the stored value is HMAC-SHA256 of the key."""
    assert hash_api_key("ek_a_b", pepper=b"pepper") == hmac.new(b"pepper", b"ek_a_b", hashlib.sha256).hexdigest()


async def test_authenticate_returns_the_device_principal(clock: Clock) -> None:
    """A valid key yields the device's principal with its permissions and roles."""
    new = generate_api_key("sensor-001", permissions=["readings:write"], roles=["device"])
    store = InMemoryAPIKeyStore([new.record])
    assert isinstance(store, APIKeyStore)
    principal = await APIKeyAuthenticator(store, clock=clock).authenticate(new.key)
    assert (principal.subject, principal.kind, principal.token_id) == ("sensor-001", "device", new.record.key_id)
    assert principal.has_permission("readings:write")
    assert not principal.has_permission("readings:delete")


def _variants(key: str) -> list[str]:
    prefix, key_id, secret_part = key.split("_", 2)
    return [
        "",
        "not-a-key",
        f"{prefix}_{key_id}_{secret_part[:-1]}x"
        if not secret_part.endswith("x")
        else f"{prefix}_{key_id}_{secret_part[:-1]}y",
        f"{prefix}_{key_id}_",
        f"{prefix}_0000000000000000_{secret_part}",
        f"xx_{key_id}_{secret_part}",
        key + "a" * 300,
        key.upper(),
    ]


@pytest.mark.parametrize("index", range(8))
async def test_wrong_keys_are_refused(clock: Clock, index: int) -> None:
    """Malformed, unknown, altered or oversized keys all raise InvalidAPIKeyError (401)."""
    new = generate_api_key("sensor-001")
    authenticator = APIKeyAuthenticator(InMemoryAPIKeyStore([new.record]), clock=clock)
    with pytest.raises(InvalidAPIKeyError) as info:
        await authenticator.authenticate(_variants(new.key)[index])
    assert info.value.status_code == 401


async def test_expired_and_removed_keys_are_refused(clock: Clock) -> None:
    """A key past its expires_at, or removed from the store, is refused."""
    expiring = generate_api_key("svc", kind="service", expires_at=clock.now + 60)
    store = InMemoryAPIKeyStore([expiring.record])
    authenticator = APIKeyAuthenticator(store, clock=clock)
    assert (await authenticator.authenticate(expiring.key)).kind == "service"
    clock.advance(61)
    with pytest.raises(InvalidAPIKeyError):
        await authenticator.authenticate(expiring.key)
    kept = generate_api_key("svc")
    await store.add(kept.record)
    assert await store.remove(kept.record.key_id)
    with pytest.raises(InvalidAPIKeyError):
        await authenticator.authenticate(kept.key)


async def test_pepper_must_match(clock: Clock) -> None:
    """A record hashed with a pepper verifies only with that pepper."""
    new = generate_api_key("svc", pepper=b"server-pepper")
    store = InMemoryAPIKeyStore([new.record])
    assert (
        await APIKeyAuthenticator(store, pepper=b"server-pepper", clock=clock).authenticate(new.key)
    ).subject == "svc"
    with pytest.raises(InvalidAPIKeyError):
        await APIKeyAuthenticator(store, clock=clock).authenticate(new.key)
