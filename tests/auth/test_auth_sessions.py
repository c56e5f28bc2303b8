"""Sessions (RFC 9700): refresh-token families with replay detection, log out everywhere, logout of one session.

Every test runs on the in-memory store and on Redis by the same body.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from energy_auth import InMemoryRevocationStore, RevocationStore, TokenManager, TokenRevokedError
from energy_common.exceptions import ValidationError

from .conftest import Clock


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, clock: Clock) -> RevocationStore:
    """Each revocation store we ship, on the fake clock (Redis namespaced by redis_key_prefix)."""
    if request.param == "memory":
        return InMemoryRevocationStore(clock=clock)
    from energy_auth.redis import RedisRevocationStore

    client: Any = request.getfixturevalue("redis_client")
    return RedisRevocationStore(client, key_prefix=request.getfixturevalue("redis_key_prefix"), clock=clock)


@pytest.fixture
def tokens(secret: str, store: RevocationStore, clock: Clock) -> TokenManager:
    """A TokenManager on the store and the fake clock."""
    return TokenManager(secret, revocation_store=store, clock=clock)


async def refused(tokens: TokenManager, token: str, token_type: str = "access") -> str | None:
    """The TokenRevokedError message for ``token``, or None when it verifies."""
    try:
        await tokens.verify_token_async(token, token_type)  # type: ignore[arg-type]
    except TokenRevokedError as exc:
        return exc.message
    return None


async def test_a_replayed_refresh_token_revokes_its_whole_family(tokens: TokenManager) -> None:
    """Reusing a refresh token revokes every token of that session (old and renewed pairs), and no other session."""
    first = tokens.create_token_pair("alice")
    other = tokens.create_token_pair("alice")
    renewed = await tokens.refresh(first.refresh_token)
    assert await refused(tokens, renewed.access_token) is None
    with pytest.raises(TokenRevokedError, match="already used"):
        await tokens.refresh(first.refresh_token)  # the attacker's (or the victim's) replay
    for token, kind in [
        (renewed.access_token, "access"),
        (renewed.refresh_token, "refresh"),
        (first.access_token, "access"),
    ]:
        assert "session was revoked" in (await refused(tokens, token, kind) or "")
    with pytest.raises(TokenRevokedError, match="session was revoked"):
        await tokens.refresh(renewed.refresh_token)
    assert await refused(tokens, other.access_token) is None
    assert await tokens.refresh(other.refresh_token)


async def test_two_refreshes_at_once_exactly_one_succeeds(tokens: TokenManager) -> None:
    """Racing refreshes of one token: exactly one returns a pair; the loser's reuse revokes the family."""
    pair = tokens.create_token_pair("bob")
    results = await asyncio.gather(*(tokens.refresh(pair.refresh_token) for _ in range(2)), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], TokenRevokedError)
    # Double use is indistinguishable from theft: the winner's pair belongs to the revoked family too.
    assert await refused(tokens, winners[0].access_token) is not None


async def test_many_racing_refreshes_still_have_one_winner(tokens: TokenManager) -> None:
    """Ten concurrent refreshes of one token: one pair, nine TokenRevokedError."""
    pair = tokens.create_token_pair("carol")
    results = await asyncio.gather(*(tokens.refresh(pair.refresh_token) for _ in range(10)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, TokenRevokedError) for r in results if isinstance(r, BaseException))


async def test_revoke_all_signs_a_user_out_everywhere_and_allows_a_new_sign_in(
    tokens: TokenManager, clock: Clock
) -> None:
    """After revoke_all every earlier token of the user is refused; a pair issued right after, and other users, pass."""
    sessions = [tokens.create_token_pair("dave") for _ in range(3)]
    bystander = tokens.create_token_pair("erin")
    clock.advance(0.25)  # a quarter second later (times have millisecond precision)
    await tokens.revoke_all("dave")
    for session in sessions:
        assert "signed out" in (await refused(tokens, session.access_token) or "")
        with pytest.raises(TokenRevokedError, match="signed out"):
            await tokens.refresh(session.refresh_token)
    fresh = tokens.create_token_pair("dave")  # same instant: the password change hands out a new pair
    assert await refused(tokens, fresh.access_token) is None
    assert await tokens.refresh(fresh.refresh_token)
    assert await refused(tokens, bystander.access_token) is None


async def test_revoke_all_keeps_the_latest_time(tokens: TokenManager, store: RevocationStore, clock: Clock) -> None:
    """An older not-before written later (a slow replica) does not re-enable revoked tokens."""
    old = tokens.create_token_pair("frank")
    clock.advance(5)
    await tokens.revoke_all("frank")
    await store.revoke_subject("frank", clock.now - 100, clock.now + 3600)
    assert await refused(tokens, old.access_token) is not None


async def test_revoke_session_is_logout_of_one_sign_in(tokens: TokenManager) -> None:
    """revoke_session(access token) revokes that session's refresh token too, and leaves the user's other sessions."""
    phone, laptop = tokens.create_token_pair("gina"), tokens.create_token_pair("gina")
    await tokens.revoke_session(phone.access_token)
    assert await refused(tokens, phone.access_token) is not None
    with pytest.raises(TokenRevokedError):
        await tokens.refresh(phone.refresh_token)
    assert await refused(tokens, laptop.access_token) is None


class CountingStore:
    """Wraps a real store and counts the calls made to it (the store itself is not replaced)."""

    def __init__(self, inner: RevocationStore) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        async def call(*args: Any) -> Any:
            self.calls.append(name)
            return await method(*args)

        return call


async def test_verification_makes_one_store_call(secret: str, store: RevocationStore, clock: Clock) -> None:
    """Checking jti, family and the user's not-before time is one status() call per verification (one round trip)."""
    counting = CountingStore(store)
    tokens = TokenManager(secret, revocation_store=counting, clock=clock)  # type: ignore[arg-type]
    pair = tokens.create_token_pair("hank")
    await tokens.revoke_all("ivy")
    counting.calls.clear()
    await tokens.verify_token_async(pair.access_token)
    assert counting.calls == ["status"]


def test_family_and_times_are_set_by_the_manager(tokens: TokenManager) -> None:
    """Callers cannot set the fam claim; revoke_all refuses an empty subject."""
    with pytest.raises(ValidationError, match="fam"):
        tokens.create_access_token({"fam": "stolen-family"})
    with pytest.raises(ValidationError):
        asyncio.run(tokens.revoke_all(""))
