"""Tests for PasswordHasher: argon2id defaults, verification that never raises, rehash, async."""

from __future__ import annotations

import asyncio

import argon2
import pytest
from energy_auth import InvalidCredentialsError, PasswordHasher, PasswordPolicyError
from energy_common.exceptions import ValidationError


def test_defaults_meet_rfc9106_and_owasp() -> None:
    """A hash made with the defaults is argon2id with at least t=3, m=64 MiB, p=4 (RFC 9106 option 2)."""
    hasher = PasswordHasher()
    stored = hasher.hash("correct horse battery staple")
    params = argon2.extract_parameters(stored)
    assert params.type is argon2.Type.ID
    assert params.time_cost >= 3
    assert params.memory_cost >= 64 * 1024
    assert params.parallelism >= 4
    assert params.salt_len >= 16
    assert params.hash_len >= 32
    assert hasher.verify("correct horse battery staple", stored)
    assert "correct horse" not in repr(hasher)


@pytest.mark.parametrize(
    "password",
    ["correct horse battery staple", "pässwörd", "密码密码密码", "🔥🔑🔥", "tab\tand\nnewline", "x", "é" * 512],
)
def test_round_trip_including_unicode(cheap_hasher: PasswordHasher, password: str) -> None:
    """ASCII and unicode passwords verify; a different password does not."""
    stored = cheap_hasher.hash(password)
    assert stored.startswith("$argon2id$")
    assert cheap_hasher.verify(password, stored)
    assert not cheap_hasher.verify(password + "!", stored)


def test_unicode_forms_are_distinct(cheap_hasher: PasswordHasher) -> None:
    """No normalisation happens: composed and decomposed forms are different passwords."""
    stored = cheap_hasher.hash("caf\u00e9")
    assert not cheap_hasher.verify("cafe\u0301", stored)


def test_salts_differ(cheap_hasher: PasswordHasher) -> None:
    """Hashing the same password twice gives different hashes (fresh salt)."""
    assert cheap_hasher.hash("same password") != cheap_hasher.hash("same password")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "garbage",
        "$argon2id$v=19$m=bad",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$!!!!",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "5f4dcc3b5aa765d61d327deb882cf99",
        None,
        123,
        b"$argon2id$",
    ],
)
def test_malformed_stored_hash_returns_false(cheap_hasher: PasswordHasher, stored: object) -> None:
    """verify() never raises on a malformed or foreign stored hash, and needs_rehash() says to replace it."""
    assert cheap_hasher.verify("password", stored) is False  # type: ignore[arg-type]
    assert cheap_hasher.needs_rehash(stored) is True  # type: ignore[arg-type]


@pytest.mark.parametrize("password", ["", None, b"bytes", 42])
def test_empty_or_non_text_password_is_refused(cheap_hasher: PasswordHasher, password: object) -> None:
    """hash() refuses an empty or non-text password with a clear 400 error; verify() returns False."""
    with pytest.raises(PasswordPolicyError) as info:
        cheap_hasher.hash(password)  # type: ignore[arg-type]
    assert isinstance(info.value, ValidationError)
    assert info.value.status_code == 400
    assert cheap_hasher.verify(password, cheap_hasher.hash("real")) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("password", "accepted"), [("a" * 1024, True), ("a" * 1025, False), ("€" * 341, True), ("€" * 342, False)]
)
def test_password_length_is_bounded_in_utf8_bytes(cheap_hasher: PasswordHasher, password: str, accepted: bool) -> None:
    """Passwords up to 1024 UTF-8 bytes are hashed; longer ones are refused (hashing-DoS guard)."""
    if accepted:
        assert cheap_hasher.verify(password, cheap_hasher.hash(password))
    else:
        with pytest.raises(PasswordPolicyError, match="1024 bytes"):
            cheap_hasher.hash(password)
        assert cheap_hasher.verify(password, cheap_hasher.hash("short")) is False


def test_parameter_upgrade_triggers_rehash(cheap_hasher: PasswordHasher) -> None:
    """A hash made with older parameters needs a rehash; verify_and_update returns the new hash."""
    stored = cheap_hasher.hash("pw-123456")
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    assert not cheap_hasher.needs_rehash(stored)
    assert stronger.needs_rehash(stored)
    ok, new_hash = stronger.verify_and_update("pw-123456", stored)
    assert ok
    assert new_hash is not None
    assert not stronger.needs_rehash(new_hash)
    assert stronger.verify("pw-123456", new_hash)
    assert stronger.verify_and_update("pw-123456", new_hash) == (True, None)
    assert stronger.verify_and_update("wrong", stored) == (False, None)


async def test_async_round_trip(cheap_hasher: PasswordHasher) -> None:
    """hash_async / verify_async / verify_and_update_async give the same answers as the sync API."""
    async with cheap_hasher:
        stored = await cheap_hasher.hash_async("async pw")
        assert await cheap_hasher.verify_async("async pw", stored)
        assert not await cheap_hasher.verify_async("nope", stored)
        assert await cheap_hasher.verify_and_update_async("async pw", stored) == (True, None)


async def test_async_hashing_does_not_block_the_event_loop() -> None:
    """While a hash runs in the executor, other coroutines keep running on the loop."""
    hasher = PasswordHasher(time_cost=2, memory_cost=16 * 1024, parallelism=1)
    progressed = asyncio.Event()
    order: list[str] = []

    async def other() -> None:
        progressed.set()

    async def hashing() -> None:
        await hasher.hash_async("blocking?")
        order.append("hash" if not progressed.is_set() else "hash-after-other")

    async with hasher:
        await asyncio.gather(hashing(), other())
    assert order == ["hash-after-other"]


async def test_authenticate_for_login(cheap_hasher: PasswordHasher) -> None:
    """authenticate() accepts the right password, refuses wrong ones and unknown users alike."""
    stored = cheap_hasher.hash("s3cret-pass")
    async with cheap_hasher:
        assert await cheap_hasher.authenticate("s3cret-pass", stored) is None
        with pytest.raises(InvalidCredentialsError) as wrong:
            await cheap_hasher.authenticate("wrong", stored)
        with pytest.raises(InvalidCredentialsError) as unknown:
            await cheap_hasher.authenticate("s3cret-pass", None)
    assert wrong.value.message == unknown.value.message
    assert wrong.value.status_code == 401


async def test_authenticate_returns_an_upgraded_hash(cheap_hasher: PasswordHasher) -> None:
    """A login with an outdated hash returns the hash to store instead."""
    stronger = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1)
    async with stronger:
        new_hash = await stronger.authenticate("pw-upgrade", cheap_hasher.hash("pw-upgrade"))
    assert new_hash is not None
    assert argon2.extract_parameters(new_hash).time_cost == 2
