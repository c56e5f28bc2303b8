"""Tests for TokenManager, JWTKey and KeySet: issuing, verifying, rotation, refresh, key strength."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from energy_auth import (
    SUPPORTED_ALGORITHMS,
    InMemoryRevocationStore,
    InvalidSignatureError,
    JWTKey,
    KeySet,
    MissingClaimError,
    TokenManager,
    TokenPair,
    TokenRevokedError,
    UnknownKeyError,
    WeakKeyError,
)
from energy_common.exceptions import ConfigurationError, ValidationError

from .conftest import Clock

ASYMMETRIC = sorted(a for a in SUPPORTED_ALGORITHMS if not a.startswith("HS"))


def test_seed_example_runs_with_a_32_byte_secret() -> None:
    """The seed README's auth example works under the new import path with a generated secret."""
    token_manager = TokenManager(secrets.token_urlsafe(32))
    token = token_manager.create_access_token({"user_id": "123", "role": "admin"})
    payload = token_manager.verify_token(token)
    assert (payload["user_id"], payload["role"], payload["type"]) == ("123", "admin", "access")


def test_seed_literal_key_is_refused_with_a_how_to() -> None:
    """The seed's literal "your-secret-key" is too short, and the error says how to generate a key."""
    with pytest.raises(WeakKeyError) as info:
        TokenManager("your-secret-key")
    assert isinstance(info.value, ConfigurationError)
    assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in info.value.message
    assert info.value.error_code == "WEAK_KEY"


@pytest.mark.parametrize(
    ("secret", "algorithm"),
    [
        ("", "HS256"),
        (b"x" * 31, "HS256"),
        ("a" * 64, "HS256"),  # long but not random
        ("ab" * 40, "HS512"),
        (secrets.token_urlsafe(32), "HS512"),  # 43 bytes < 64
        (b"-----BEGIN PUBLIC KEY-----\n" + secrets.token_bytes(64) + b"\n-----END PUBLIC KEY-----", "HS256"),
    ],
)
def test_weak_hmac_secrets_are_refused(secret: str | bytes, algorithm: str) -> None:
    """Short, repetitive or PEM-looking HMAC secrets are refused at construction."""
    with pytest.raises(WeakKeyError):
        TokenManager(secret, algorithm)


def test_short_rsa_key_is_refused() -> None:
    """An RSA key under 2048 bits is refused at construction."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(WeakKeyError):
        TokenManager(pem, "RS256")


@pytest.mark.parametrize(
    ("pem", "algorithm"),
    [
        (b"not a pem", "RS256"),
        (JWTKey.generate("EdDSA").private_pem(), "RS256"),
        (
            ec.generate_private_key(ec.SECP384R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "ES256",
        ),
        (b"irrelevant", "XS999"),
        (b"irrelevant", "none"),
    ],
)
def test_unusable_keys_and_algorithms(pem: bytes, algorithm: str) -> None:
    """Unreadable PEMs, keys of the wrong type or curve and unknown algorithms are configuration errors."""
    with pytest.raises(ConfigurationError):
        TokenManager(pem, algorithm)


@pytest.mark.parametrize("algorithm", sorted(SUPPORTED_ALGORITHMS))
def test_round_trip_and_pyjwt_interop(algorithm: str, key_for: Callable[[str], JWTKey]) -> None:
    """Tokens of every algorithm verify here and with raw PyJWT, and PyJWT's tokens verify here."""
    key = key_for(algorithm)
    manager = TokenManager(key, issuer="iss", audience="aud")
    token = manager.create_access_token({"sub": "u1", "permissions": ["users:read"]})
    payload = manager.verify_token(token)
    assert {"exp", "iat", "nbf", "jti", "type", "iss", "aud"} <= payload.keys()
    verifying: Any = key.public_pem() if not key.is_symmetric else key._private
    assert jwt.decode(token, verifying, algorithms=[algorithm], audience="aud", issuer="iss") == payload
    assert jwt.get_unverified_header(token).get("kid") == key.kid
    if not key.is_symmetric:
        signing: Any = serialization.load_pem_private_key(key.private_pem(), None)
        foreign = jwt.encode(payload | {"jti": "other"}, signing, algorithm=algorithm, headers={"kid": key.kid})
        assert manager.verify_token(foreign)["jti"] == "other"


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_pem_private_and_public_managers(algorithm: str, key_for: Callable[[str], JWTKey]) -> None:
    """A manager built from the private PEM signs; one from the public PEM only verifies."""
    key = key_for(algorithm)
    signer = TokenManager(key.private_pem(), algorithm)
    verifier = TokenManager(key.public_pem(), algorithm)
    assert verifier.verify_token(signer.create_access_token({"sub": "u"}))["sub"] == "u"
    with pytest.raises(ConfigurationError):
        verifier.create_access_token({"sub": "u"})


def test_kid_defaults_to_the_rfc7638_thumbprint() -> None:
    """An asymmetric key's default kid is its RFC 7638 thumbprint, the same from private and public PEM."""
    key = JWTKey.generate("ES256")
    assert key.kid == key.thumbprint()
    assert JWTKey.from_pem(key.public_pem(), "ES256").kid == key.kid


def test_repr_never_shows_secret_material(secret: str) -> None:
    """Keys and managers print without their secret."""
    manager = TokenManager(secret)
    assert secret not in repr(manager)
    assert secret not in repr(manager.keys.signing_key)


@pytest.mark.parametrize("reserved", ["exp", "iat", "nbf", "jti", "type", "iss", "aud"])
def test_registered_claims_cannot_be_set_by_callers(manager: TokenManager, reserved: str) -> None:
    """Callers cannot override exp, iat, nbf, jti, type, iss or aud."""
    with pytest.raises(ValidationError):
        manager.create_access_token({reserved: 1})


@pytest.mark.parametrize("claims", [{"x": object()}, {"x": float("nan")}, {"sub": 5}])
def test_unserialisable_claims(manager: TokenManager, claims: dict[str, Any]) -> None:
    """Claims that are not JSON (or a non-string sub) are a ValidationError, not a TypeError."""
    with pytest.raises(ValidationError):
        manager.create_access_token(claims)


def test_each_token_has_a_unique_jti(manager: TokenManager) -> None:
    """Two tokens with the same claims differ by jti."""
    first = manager.verify_token(manager.create_access_token({"sub": "u"}))
    second = manager.verify_token(manager.create_access_token({"sub": "u"}))
    assert first["jti"] != second["jti"]


def test_ttls_are_applied(manager: TokenManager, clock: Clock) -> None:
    """Access and refresh tokens expire after their configured lifetimes."""
    access = manager.verify_token(manager.create_access_token({"sub": "u"}))
    refresh = manager.verify_token(manager.create_refresh_token("u"), "refresh")
    assert access["exp"] - clock.now == manager.access_ttl == 900
    assert refresh["exp"] - clock.now == manager.refresh_ttl == 7 * 24 * 3600


def test_key_rotation(clock: Clock) -> None:
    """After rotation new tokens use the new kid and old tokens verify until the old key is dropped."""
    old, new = JWTKey.generate("EdDSA", kid="2026-10"), JWTKey.generate("EdDSA", kid="2026-11")
    before = TokenManager(KeySet([old]), clock=clock)
    old_token = before.create_access_token({"sub": "u"})
    during = TokenManager(KeySet([new, old], signing_kid="2026-11"), clock=clock)
    new_token = during.create_access_token({"sub": "u"})
    assert jwt.get_unverified_header(new_token)["kid"] == "2026-11"
    assert during.verify_token(old_token)["sub"] == during.verify_token(new_token)["sub"] == "u"
    after = TokenManager(KeySet([new]), clock=clock)
    with pytest.raises(UnknownKeyError):
        after.verify_token(old_token)


def test_key_from_another_issuer_with_same_kid(clock: Clock) -> None:
    """A token signed by a different key that reuses our kid fails the signature check."""
    ours, theirs = JWTKey.generate("HS256", kid="k"), JWTKey.generate("HS256", kid="k")
    token = TokenManager(theirs, clock=clock).create_access_token({"sub": "u"})
    with pytest.raises(InvalidSignatureError):
        TokenManager(ours, clock=clock).verify_token(token)


@pytest.mark.parametrize(
    ("keys", "signing_kid"),
    [
        ([], None),
        ([JWTKey.generate("HS256"), JWTKey.generate("HS256")], None),  # several keys without kid
        ([JWTKey.generate("HS256", kid="a"), JWTKey.generate("HS256", kid="a")], None),
        ([JWTKey.generate("HS256", kid="a")], "b"),
    ],
)
def test_invalid_key_sets(keys: list[JWTKey], signing_kid: str | None) -> None:
    """Empty sets, missing or duplicate kids and unknown signing kids are refused."""
    with pytest.raises(ConfigurationError):
        KeySet(keys, signing_kid=signing_kid)


async def test_refresh_issues_a_new_pair_and_revokes_the_old_token(secret: str) -> None:
    """refresh() returns a new pair; the old refresh token works once, and its replay revokes the renewed pair too."""
    manager = TokenManager(secret, revocation_store=InMemoryRevocationStore())
    pair = manager.create_token_pair("user-1", {"roles": ["viewer"]})
    assert isinstance(pair, TokenPair)
    assert pair.access_token not in repr(pair)
    assert pair.refresh_token not in repr(pair)
    renewed = await manager.refresh(pair.refresh_token, claims={"roles": ["operator"]})
    access = await manager.verify_token_async(renewed.access_token)
    assert (access["sub"], access["roles"]) == ("user-1", ["operator"])
    with pytest.raises(TokenRevokedError, match="already used"):
        await manager.refresh(pair.refresh_token)
    with pytest.raises(TokenRevokedError, match="session was revoked"):
        await manager.refresh(renewed.refresh_token)


async def test_refresh_and_revoke_need_a_store(secret: str) -> None:
    """Without a revocation store, refresh() and revoke() say how to configure one."""
    manager = TokenManager(secret)
    pair = manager.create_token_pair("u")
    with pytest.raises(ConfigurationError, match="revocation_store"):
        await manager.refresh(pair.refresh_token)
    with pytest.raises(ConfigurationError, match="revocation_store"):
        await manager.revoke(pair.access_token)


def test_sync_verify_refuses_when_a_store_is_configured(secret: str) -> None:
    """With a revocation store, the sync verify_token refuses rather than skip the revocation check."""
    manager = TokenManager(secret, revocation_store=InMemoryRevocationStore())
    with pytest.raises(ConfigurationError, match="verify_token_async"):
        manager.verify_token(manager.create_access_token({"sub": "u"}))


async def test_refresh_token_without_subject(secret: str, forge: Any, clock: Clock) -> None:
    """A refresh token lacking sub cannot be exchanged."""
    manager = TokenManager(secret, revocation_store=InMemoryRevocationStore(), clock=clock)
    claims = {"iat": int(clock.now), "nbf": int(clock.now), "exp": int(clock.now) + 60, "jti": "j", "type": "refresh"}
    with pytest.raises(MissingClaimError):
        await manager.refresh(forge({"alg": "HS256"}, claims))


def test_create_refresh_token_needs_a_subject(manager: TokenManager) -> None:
    """A refresh token without a subject would be useless: refused."""
    with pytest.raises(ValidationError):
        manager.create_refresh_token("")


def test_audience_lists(secret: str, clock: Clock) -> None:
    """A verifier with several accepted audiences accepts a token naming any of them."""
    issuer = TokenManager(secret, audience=["meter-api", "billing-api"], clock=clock)
    token = issuer.create_access_token({"sub": "u"})
    assert sorted(issuer.verify_token(token)["aud"]) == ["billing-api", "meter-api"]
    assert TokenManager(secret, audience="billing-api", clock=clock).verify_token(token)["sub"] == "u"


@pytest.mark.parametrize("option", ["access_ttl", "refresh_ttl", "leeway"])
def test_negative_durations_are_refused(secret: str, option: str) -> None:
    """Negative lifetimes or leeway are configuration errors."""
    with pytest.raises(ConfigurationError):
        TokenManager(secret, **{option: -1})
