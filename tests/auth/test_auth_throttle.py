"""Tests for LoginThrottle: per-address and per-(account, address) lockouts that always end, on memory and Redis."""

from __future__ import annotations

from typing import Any

import pytest
from energy_auth import InvalidCredentialsError, LoginThrottle, ThrottleStore
from energy_common.exceptions import RateLimitExceededError, ValidationError

from .conftest import Clock


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Any:
    """An energy_common cache backend: in memory, or Redis on the shared server."""
    from energy_common.cache import MemoryBackend, RedisBackend

    if request.param == "memory":
        return MemoryBackend()
    return RedisBackend(request.getfixturevalue("redis_client"))


@pytest.fixture
def throttle(store: Any, clock: Clock, redis_key_prefix: str) -> LoginThrottle:
    """A small throttle: 4 failures per address, 2 per (account, address), 60 s lockout doubling up to 240 s."""
    return LoginThrottle(
        store,
        address_limit=4,
        account_limit=2,
        window=600,
        lockout=60,
        max_lockout=240,
        key_prefix=f"{redis_key_prefix}login:",
        clock=clock,
    )


async def fail(throttle: LoginThrottle, account: str, address: str, times: int = 1) -> None:
    """Record ``times`` failed logins."""
    for _ in range(times):
        await throttle.failed(account, address)


async def locked(throttle: LoginThrottle, account: str, address: str) -> float | None:
    """The Retry-After of a refused attempt, or None when the attempt may go ahead."""
    try:
        await throttle.check(account, address)
    except RateLimitExceededError as exc:
        refusal: RateLimitExceededError | None = exc
    else:
        refusal = None
    if refusal is None:
        return None
    assert refusal.status_code == 429
    return float(refusal.headers["Retry-After"])


def test_backends_have_the_store_shape(store: Any) -> None:
    """energy_common's cache backends satisfy ThrottleStore (no import of the cache extra by energy_auth)."""
    assert isinstance(store, ThrottleStore)


async def test_pair_lockout_does_not_lock_the_victim_elsewhere(throttle: LoginThrottle) -> None:
    """Guessing alice's password from one address locks that pair only: alice elsewhere and bob there still get in."""
    await fail(throttle, "alice", "203.0.113.66", times=1)
    assert await locked(throttle, "alice", "203.0.113.66") is None
    await fail(throttle, "alice", "203.0.113.66", times=1)
    assert await locked(throttle, "alice", "203.0.113.66") == 60
    assert await locked(throttle, "alice", "198.51.100.1") is None
    assert await locked(throttle, "bob", "203.0.113.66") is None


async def test_address_lockout_covers_every_account(throttle: LoginThrottle) -> None:
    """One address failing for many accounts is locked for all of them; other addresses are not."""
    for index in range(4):
        await throttle.failed(f"user-{index}", "203.0.113.66")
    assert await locked(throttle, "someone-new", "203.0.113.66") == 60
    assert await locked(throttle, "someone-new", "198.51.100.1") is None


async def test_lockouts_end_and_repeat_offences_double_up_to_the_cap(throttle: LoginThrottle, clock: Clock) -> None:
    """Each lockout ends; a pair that keeps failing waits 60, 120, 240, 240 s: never forever."""
    waits = []
    await fail(throttle, "alice", "203.0.113.66", times=1)
    for _ in range(4):
        await throttle.failed("alice", "203.0.113.66")
        wait = await locked(throttle, "alice", "203.0.113.66")
        assert wait is not None
        waits.append(wait)
        clock.advance(wait + 0.5)
        assert await locked(throttle, "alice", "203.0.113.66") is None
    assert waits[:3] == [60, 120, 240]
    assert max(waits) == 240
    assert [throttle.pair_lockout(n) for n in (1, 2, 3, 4, 50, 10**6)] == [60, 120, 240, 240, 240, 240]


async def test_success_forgets_the_pairs_failures(throttle: LoginThrottle) -> None:
    """After a successful login the pair starts from zero again."""
    await fail(throttle, "alice", "198.51.100.1", times=1)
    await throttle.succeeded("alice", "198.51.100.1")
    await fail(throttle, "alice", "198.51.100.1", times=1)
    assert await locked(throttle, "alice", "198.51.100.1") is None


async def test_attempt_counts_only_wrong_passwords(throttle: LoginThrottle) -> None:
    """attempt() counts InvalidCredentialsError as a failure, other errors as nothing, and refuses while locked."""
    for _ in range(2):
        with pytest.raises(InvalidCredentialsError):
            async with throttle.attempt("alice", "203.0.113.66"):
                raise InvalidCredentialsError()
    with pytest.raises(RateLimitExceededError):
        async with throttle.attempt("alice", "203.0.113.66"):
            pytest.fail("the body must not run while locked")
    for _ in range(5):
        with pytest.raises(ValidationError):
            async with throttle.attempt("bob", "198.51.100.1"):
                raise ValidationError("bad form")
    assert await locked(throttle, "bob", "198.51.100.1") is None


async def test_keys_hold_no_account_names(throttle: LoginThrottle, store: Any, redis_key_prefix: str) -> None:
    """Account names are hashed into the keys (user input never shapes a key, no PII in Redis)."""
    await fail(throttle, "alice:*\r\nFLUSHALL", "203.0.113.66", times=2)
    keys = throttle._keys("alice:*\r\nFLUSHALL", "203.0.113.66")
    assert all("alice" not in key and "\n" not in key for key in keys)
    assert await locked(throttle, "alice:*\r\nFLUSHALL", "203.0.113.66") is not None


def test_bad_settings_are_refused(store: Any) -> None:
    """Zero limits or a lockout above its cap are configuration errors."""
    from energy_common.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError):
        LoginThrottle(store, account_limit=0)
    with pytest.raises(ConfigurationError):
        LoginThrottle(store, lockout=600, max_lockout=60)
