"""Login throttling per account and per client address, with lockouts that always end.

Two counters of *failed* logins, each counting for ``window`` seconds from its first failure:

- per client address (any account): stops one address from guessing many accounts;
- per (account, client address): stops guessing one account from one address.

Over a limit, that key is locked for a while: the pair with a capped exponential
backoff (``lockout``, doubling per repeat offence, never over ``max_lockout``), the
address for ``lockout``. There is deliberately no lockout of an account as a whole: that
is the lock an attacker can turn against its owner. Failures from the attacker's
addresses never lock the victim out of their own address, and every lockout ends.

The counters live in any store with the :class:`ThrottleStore` shape, which
``energy_common.cache`` backends (``MemoryBackend``, ``RedisBackend``) have, so every
replica shares them through Redis.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol, runtime_checkable

from energy_common.exceptions import ConfigurationError, RateLimitExceededError

from energy_auth._errors import InvalidCredentialsError

__all__ = ["LoginThrottle", "ThrottleStore"]


@runtime_checkable
class ThrottleStore(Protocol):
    """The key-value operations the throttle needs (an ``energy_common.cache.CacheBackend`` has them)."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values of ``keys`` (``None`` when absent), in one round trip."""
        ...

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` for ``ttl`` seconds."""
        ...

    async def incr(self, key: str, amount: int, ttl: float | None) -> int:
        """Add ``amount`` and return the new value (the TTL is set on creation)."""
        ...

    async def delete(self, keys: Sequence[str]) -> int:
        """Delete ``keys``; return how many existed."""
        ...


def _part(value: str) -> str:
    # Account names are user input: hash them into fixed, safe key parts (no key injection, no PII in Redis).
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class LoginThrottle:
    """Count failed logins per client address and per (account, address); refuse while locked.

    Args:
        store: Shared counters (``runtime.cache.backend``: Redis in production).
        address_limit: Failed logins per address within a window that lock it.
        account_limit: Failed logins per (account, address) within a window that lock the pair.
        window: Counting window in seconds.
        lockout: First lockout in seconds (doubles per repeat offence of a pair).
        max_lockout: Upper bound of any lockout, in seconds.
        key_prefix: Namespace of the keys.
        clock: Returns the current Unix time.

    Raises:
        ConfigurationError: A limit or duration is out of range.

    Example:
        >>> throttle = LoginThrottle(cache.backend, address_limit=20, account_limit=5)  # doctest: +SKIP
        >>> async with throttle.attempt(form.username, client_address(request.scope)):  # doctest: +SKIP
        ...     new_hash = await hasher.authenticate(form.password, user.password_hash if user else None)
    """

    def __init__(
        self,
        store: ThrottleStore,
        *,
        address_limit: int = 20,
        account_limit: int = 5,
        window: float = 900.0,
        lockout: float = 60.0,
        max_lockout: float = 900.0,
        key_prefix: str = "energy-auth:login:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if min(address_limit, account_limit) < 1 or not window > 0 or not 0 < lockout <= max_lockout:
            raise ConfigurationError("LoginThrottle needs limits >= 1, window > 0 and 0 < lockout <= max_lockout.")
        self.store = store
        self.address_limit = address_limit
        self.account_limit = account_limit
        self.window = float(window)
        self.lockout = float(lockout)
        self.max_lockout = float(max_lockout)
        self.key_prefix = key_prefix
        self._clock = clock

    def _keys(self, account: str, address: str) -> tuple[str, str, str, str, str]:
        pair = f"{_part(account)}:{_part(address)}"
        addr = _part(address)
        p = self.key_prefix
        return (
            f"{p}lock:pair:{pair}",
            f"{p}lock:addr:{addr}",
            f"{p}fail:pair:{pair}",
            f"{p}fail:addr:{addr}",
            f"{p}strikes:{pair}",
        )

    def pair_lockout(self, strikes: int) -> float:
        """The lockout after the ``strikes``-th offence of a pair: doubling, capped at ``max_lockout``."""
        return float(min(self.lockout * 2 ** min(max(strikes - 1, 0), 32), self.max_lockout))

    async def check(self, account: str, address: str) -> None:
        """Refuse an attempt while the address or the (account, address) pair is locked.

        Raises:
            RateLimitExceededError: 429 with ``Retry-After`` (the same answer for both locks).
        """
        lock_pair, lock_addr, *_ = self._keys(account, address)
        now = self._clock()
        until = max((float(v) for v in await self.store.get_many([lock_pair, lock_addr]) if v is not None), default=0.0)
        if until > now:
            error = RateLimitExceededError(
                "Too many failed sign-ins; wait before trying again.", retry_after=max(1.0, until - now)
            )
            error.headers = {"Retry-After": str(max(1, round(until - now)))}
            raise error

    async def failed(self, account: str, address: str) -> None:
        """Count a failed login; lock the pair or the address when it goes over its limit."""
        lock_pair, lock_addr, fail_pair, fail_addr, strikes_key = self._keys(account, address)
        now = self._clock()
        if await self.store.incr(fail_pair, 1, self.window) >= self.account_limit:
            strikes = await self.store.incr(strikes_key, 1, self.window + self.max_lockout)
            duration = self.pair_lockout(strikes)
            await self.store.set(lock_pair, str(now + duration).encode(), duration)
        if await self.store.incr(fail_addr, 1, self.window) >= self.address_limit:
            await self.store.set(lock_addr, str(now + self.lockout).encode(), self.lockout)

    async def succeeded(self, account: str, address: str) -> None:
        """Forget the pair's failures after a successful login (the address counter keeps counting)."""
        _, _, fail_pair, _, strikes_key = self._keys(account, address)
        await self.store.delete([fail_pair, strikes_key])

    @contextlib.asynccontextmanager
    async def attempt(self, account: str, address: str) -> AsyncIterator[None]:
        """Check, run the password check inside, and count its outcome.

        An :class:`InvalidCredentialsError` raised inside counts as a failure and is
        re-raised; leaving normally counts as a success; other errors count as neither.

        Raises:
            RateLimitExceededError: The address or pair is locked (before the body runs).
        """
        await self.check(account, address)
        try:
            yield
        except InvalidCredentialsError:
            await self.failed(account, address)
            raise
        await self.succeeded(account, address)

    def __repr__(self) -> str:
        return (
            f"LoginThrottle(address_limit={self.address_limit}, account_limit={self.account_limit}, "
            f"window={self.window}, max_lockout={self.max_lockout})"
        )
