"""Token revocation: by ``jti``, by session (refresh-token family) and per subject; store Protocol, memory store.

Three things can revoke a token, all answered by one :meth:`RevocationStore.status` call
(one round trip on Redis), so verification costs no more than the ``jti`` check alone:

- its ``jti`` (logout of one token, a refresh token used once);
- its family ``fam``: every token of one sign-in, revoked when a refresh token is
  replayed (RFC 9700 §4.14.2: the attacker's and the victim's tokens alike);
- its subject's not-before time (log out everywhere, password change): tokens issued
  (``iat``) before it are refused.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from energy_auth._errors import TokenRevokedError

__all__ = [
    "FAMILY_PREFIX",
    "InMemoryRevocationStore",
    "RevocationStatus",
    "RevocationStore",
    "check_revocation",
    "floor_ms",
    "session_revoked",
    "token_status",
]

# Families are revoked as ids of their own in the jti keyspace (token jtis are hex).
FAMILY_PREFIX = "family:"


def floor_ms(value: float) -> float:
    """``value`` rounded down to the millisecond (the precision of ``iat`` and of not-before times)."""
    return math.floor(value * 1000) / 1000


@dataclass(frozen=True, slots=True)
class RevocationStatus:
    """What the store knows about one token.

    Attributes:
        token: Its ``jti`` is revoked.
        family: Its family (session) is revoked.
        not_before: Its subject's not-before time (tokens issued earlier are revoked), if any.
    """

    token: bool = False
    family: bool = False
    not_before: float | None = None


@runtime_checkable
class RevocationStore(Protocol):
    """Where revoked token ids (``jti``) live until the token would have expired anyway.

    Implementations: :class:`InMemoryRevocationStore` (one process) and
    :class:`energy_auth.redis.RedisRevocationStore` (shared by every replica).
    """

    async def revoke(self, jti: str, expires_at: float) -> bool:
        """Revoke ``jti`` until Unix time ``expires_at``.

        Returns:
            ``True`` if this call revoked it, ``False`` if it was already revoked (so
            a refresh token can be used exactly once, even by racing requests).
        """
        ...

    async def is_revoked(self, jti: str) -> bool:
        """Tell whether ``jti`` is revoked."""
        ...

    async def revoke_subject(self, subject: str, not_before: float, expires_at: float) -> None:
        """Revoke every token of ``subject`` issued before ``not_before``, remembered until ``expires_at``."""
        ...

    async def status(self, jti: str, family: str | None, subject: str | None) -> RevocationStatus:
        """Whether ``jti`` or ``family`` is revoked and ``subject``'s not-before time, in one round trip."""
        ...


def _ids(payload: dict[str, Any]) -> tuple[str, str | None, str | None]:
    family, subject = payload.get("fam"), payload.get("sub")
    return payload["jti"], family if isinstance(family, str) else None, subject if isinstance(subject, str) else None


def session_revoked(state: RevocationStatus, issued_at: float) -> TokenRevokedError | None:
    """The error for a token whose session or subject is revoked (not its own ``jti``), else ``None``."""
    if state.family:
        return TokenRevokedError("This session was revoked (its refresh token was used twice); sign in again.")
    if state.not_before is not None and float(issued_at) < state.not_before:
        return TokenRevokedError("Every session of this account was signed out; sign in again.")
    return None


async def token_status(store: RevocationStore, payload: dict[str, Any]) -> RevocationStatus:
    """The store's state for a verified payload (its ``jti``, ``fam`` and ``sub``), in one call."""
    return await store.status(*_ids(payload))


async def check_revocation(store: RevocationStore, payload: dict[str, Any]) -> None:
    """Refuse a verified payload that its ``jti``, its family or its subject's not-before time revokes.

    Raises:
        TokenRevokedError: Revoked, with a message saying which way.
    """
    state = await token_status(store, payload)
    error = session_revoked(state, payload["iat"])
    if error is not None:
        raise error
    if state.token:
        raise TokenRevokedError()


class InMemoryRevocationStore:
    """A revocation store in this process's memory; entries vanish when the token expires.

    Good for a single process and for tests. With several replicas use
    :class:`energy_auth.redis.RedisRevocationStore`, or a token revoked on one replica
    stays valid on the others.

    Args:
        clock: Returns the current Unix time (injectable for tests).

    Example:
        >>> import asyncio
        >>> store = InMemoryRevocationStore()
        >>> asyncio.run(store.revoke("jti-1", time.time() + 60))
        True
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []
        self._subjects: dict[str, tuple[float, float]] = {}  # subject -> (not_before, expires_at)

    def _purge(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, jti = heapq.heappop(self._expiry)
            if self._entries.get(jti) == expires_at:
                del self._entries[jti]

    async def revoke(self, jti: str, expires_at: float) -> bool:
        """Revoke ``jti`` until ``expires_at`` (at least one second from now)."""
        now = self._clock()
        self._purge(now)
        if jti in self._entries:
            return False
        expires_at = max(float(expires_at), now + 1.0)
        self._entries[jti] = expires_at
        heapq.heappush(self._expiry, (expires_at, jti))
        return True

    async def is_revoked(self, jti: str) -> bool:
        """Tell whether ``jti`` is revoked and its entry has not expired."""
        expires_at = self._entries.get(jti)
        return expires_at is not None and expires_at > self._clock()

    async def revoke_subject(self, subject: str, not_before: float, expires_at: float) -> None:
        """Revoke ``subject``'s tokens issued before ``not_before`` (a later time wins over an earlier one)."""
        now = self._clock()
        self._subjects = {s: v for s, v in self._subjects.items() if v[1] > now}
        previous = self._subjects.get(subject, (0.0, 0.0))
        self._subjects[subject] = (max(previous[0], float(not_before)), max(previous[1], float(expires_at)))

    async def status(self, jti: str, family: str | None, subject: str | None) -> RevocationStatus:
        """The revocation state of one token."""
        entry = self._subjects.get(subject) if subject is not None else None
        not_before = entry[0] if entry is not None and entry[1] > self._clock() else None
        return RevocationStatus(
            await self.is_revoked(jti),
            family is not None and await self.is_revoked(FAMILY_PREFIX + family),
            not_before,
        )

    def __len__(self) -> int:
        self._purge(self._clock())
        return len(self._entries)
