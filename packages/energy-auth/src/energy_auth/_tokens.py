"""TokenManager: issue, verify, refresh and revoke JWTs with a fixed algorithm and key set."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from energy_common.exceptions import ConfigurationError, ValidationError

from energy_auth._claims import FAMILY_CLAIM, RESERVED_CLAIMS, TYPE_CLAIM, ClaimRules, TokenType, validate_claims
from energy_auth._errors import MissingClaimError, TokenRevokedError
from energy_auth._jose import DEFAULT_MAX_TOKEN_BYTES, b64encode, parse_token, select_key, verify_signature
from energy_auth._keys import HMAC_MIN_BYTES, JWTKey
from energy_auth._keyset import KeySet
from energy_auth._revocation import (
    FAMILY_PREFIX,
    RevocationStore,
    check_revocation,
    floor_ms,
    session_revoked,
    token_status,
)

__all__ = ["TokenManager", "TokenPair", "seconds"]


def seconds(value: timedelta | float, name: str) -> float:
    """Return a duration in seconds, refusing negative values."""
    result = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if result < 0:
        raise ConfigurationError(f"{name} must not be negative.")
    return result


def audiences_of(audience: str | Iterable[str] | None) -> frozenset[str] | None:
    """Normalise an audience option into a set (``None`` stays ``None``)."""
    if audience is None:
        return None
    values = frozenset([audience]) if isinstance(audience, str) else frozenset(audience)
    if not values:
        raise ConfigurationError("audience must name at least one audience, or be None.")
    return values


@dataclass(frozen=True, slots=True)
class TokenPair:
    """An access token and the refresh token that renews it (OAuth 2 token response shape).

    The tokens are credentials: they are left out of ``repr`` so a logged pair leaks nothing.

    Attributes:
        access_token: The short-lived token for API calls.
        refresh_token: The long-lived, single-use token for :meth:`TokenManager.refresh`.
        expires_in: Seconds until the access token expires.
        token_type: Always ``"bearer"``.
    """

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a password


class TokenManager:
    """Issue and verify JWTs; the algorithm list is fixed here, never taken from a token.

    Args:
        secret_key: An HMAC secret (``str``/``bytes`` of >= 32 random bytes for HS256), a
            PEM private key (signs and verifies) or public key (verifies only) for
            RS*/PS*/ES*/EdDSA, a :class:`JWTKey`, or a :class:`KeySet` for rotation.
        algorithm: The algorithm for a ``str``/``bytes`` key (ignored for key objects).
        issuer: ``iss`` written into tokens and required on verification.
        audience: ``aud`` written into tokens and accepted on verification (a token
            naming any of several audiences passes); tokens carrying an ``aud`` are refused when this is ``None``.
        access_ttl: Lifetime of access tokens (default 15 minutes).
        refresh_ttl: Lifetime of refresh tokens (default 7 days).
        leeway: Clock skew tolerated on exp/nbf/iat (default 10 seconds).
        revocation_store: Where revoked ``jti`` values live; needed by :meth:`refresh`
            and :meth:`revoke`, and checked by :meth:`verify_token_async`.
        max_token_bytes: Longer tokens are refused before any parsing (default 8 KiB).
        clock: Returns the current Unix time (injectable for tests).

    Raises:
        WeakKeyError: The HMAC secret is shorter than the algorithm needs (32 bytes for
            HS256) or an RSA key is shorter than 2048 bits; the message says how to make one.
        ConfigurationError: Unsupported algorithm or unreadable key.

    Example:
        >>> import secrets
        >>> manager = TokenManager(secrets.token_urlsafe(32))
        >>> token = manager.create_access_token({"user_id": "123", "role": "admin"})
        >>> manager.verify_token(token)["role"]
        'admin'
    """

    def __init__(
        self,
        secret_key: str | bytes | JWTKey | KeySet,
        algorithm: str = "HS256",
        *,
        issuer: str | None = None,
        audience: str | Iterable[str] | None = None,
        access_ttl: timedelta | float = timedelta(minutes=15),
        refresh_ttl: timedelta | float = timedelta(days=7),
        leeway: timedelta | float = timedelta(seconds=10),
        revocation_store: RevocationStore | None = None,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(secret_key, KeySet):
            self.keys = secret_key
        elif isinstance(secret_key, JWTKey):
            self.keys = KeySet([secret_key])
        elif algorithm in HMAC_MIN_BYTES:
            self.keys = KeySet([JWTKey.hmac(secret_key, algorithm)])
        else:
            self.keys = KeySet([JWTKey.from_pem(secret_key, algorithm)])
        self.issuer = issuer
        self._audiences = audiences_of(audience)
        self._audience_claim: str | list[str] | None = None
        if isinstance(audience, str):
            self._audience_claim = audience
        elif self._audiences is not None:
            self._audience_claim = sorted(self._audiences)
        self.access_ttl = seconds(access_ttl, "access_ttl")
        self.refresh_ttl = seconds(refresh_ttl, "refresh_ttl")
        self.leeway = seconds(leeway, "leeway")
        self.revocation_store = revocation_store
        self.max_token_bytes = max_token_bytes
        self._clock = clock
        self._rules = ClaimRules(issuer, self._audiences, self.leeway, clock)
        self._headers: dict[str | None, bytes] = {}

    # ------------------------------------------------------------------ issuing

    def _encode(self, claims: Mapping[str, Any], token_type: TokenType, ttl: float, family: str | None = None) -> str:
        key = self.keys.signing_key
        if key is None:
            raise ConfigurationError("This TokenManager holds only public keys and cannot issue tokens.")
        reserved = RESERVED_CLAIMS.intersection(claims)
        if reserved:
            raise ValidationError(
                f"Claims {sorted(reserved)} are set by the TokenManager; remove them from the claims.",
                {"claims": sorted(reserved)},
            )
        if "sub" in claims and not isinstance(claims["sub"], str):
            raise ValidationError("The 'sub' claim must be a string.", {"claim": "sub"})
        issued = self._clock()
        now = int(issued)
        payload: dict[str, Any] = {
            **claims,
            # Millisecond precision: a token issued right after revoke_all() is newer than it.
            "iat": floor_ms(issued),
            "nbf": now,
            "exp": now + max(1, int(ttl)),
            "jti": uuid.uuid4().hex,
            TYPE_CLAIM: token_type,
        }
        if family is not None:
            payload[FAMILY_CLAIM] = family
        if self.issuer is not None:
            payload["iss"] = self.issuer
        if self._audience_claim is not None:
            payload["aud"] = self._audience_claim
        try:
            body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"The claims are not JSON-serialisable: {exc}.") from exc
        header = self._headers.get(key.kid)
        if header is None:
            fields = {"alg": key.algorithm, "typ": "JWT"} | ({} if key.kid is None else {"kid": key.kid})
            header = self._headers[key.kid] = b64encode(json.dumps(fields, separators=(",", ":")).encode())
        signing_input = header + b"." + b64encode(body)
        return (signing_input + b"." + b64encode(key.sign(signing_input))).decode("ascii")

    def create_access_token(
        self, claims: Mapping[str, Any] | None = None, *, expires_in: timedelta | float | None = None
    ) -> str:
        """Issue an access token carrying ``claims`` plus exp, iat, nbf, jti, type (and iss/aud).

        Args:
            claims: Application claims, e.g. ``{"sub": "123", "roles": ["admin"]}``.
            expires_in: Lifetime of this token instead of ``access_ttl``.

        Raises:
            ValidationError: ``claims`` sets a registered claim or is not JSON-serialisable.
        """
        ttl = self.access_ttl if expires_in is None else seconds(expires_in, "expires_in")
        return self._encode(claims or {}, "access", ttl)

    def create_refresh_token(
        self, subject: str, *, expires_in: timedelta | float | None = None, family: str | None = None
    ) -> str:
        """Issue a refresh token for ``subject`` (it carries no other application claims).

        Args:
            subject: The user.
            expires_in: Lifetime instead of ``refresh_ttl``.
            family: The session (``fam`` claim) it belongs to; default: a new one.

        Raises:
            ValidationError: ``subject`` is empty or not a string.
        """
        if not isinstance(subject, str) or not subject:
            raise ValidationError("A refresh token needs a non-empty subject string.")
        ttl = self.refresh_ttl if expires_in is None else seconds(expires_in, "expires_in")
        return self._encode({"sub": subject}, "refresh", ttl, family or uuid.uuid4().hex)

    def create_token_pair(
        self, subject: str, claims: Mapping[str, Any] | None = None, *, family: str | None = None
    ) -> TokenPair:
        """Issue an access token (``sub`` = ``subject`` plus ``claims``) and a refresh token of one session.

        Both carry the session's family id (``fam``, new unless given), so replaying the
        refresh token later revokes both, and every pair refreshed from them.
        """
        family = family or uuid.uuid4().hex
        access = self._encode({**(claims or {}), "sub": subject}, "access", self.access_ttl, family)
        return TokenPair(access, self.create_refresh_token(subject, family=family), int(self.access_ttl))

    # ------------------------------------------------------------------ verifying

    def _decode(self, token: str | bytes, token_type: TokenType | None) -> dict[str, Any]:
        """Verify signature and claims (not revocation); ``token_type=None`` accepts both types."""
        parsed = parse_token(token, self.max_token_bytes)
        payload = verify_signature(parsed, select_key(parsed, self.keys))
        validate_claims(payload, token_type, self._rules)
        return payload

    def verify_token(self, token: str | bytes, token_type: TokenType = "access") -> dict[str, Any]:  # noqa: S107 - a token type, not a password
        """Verify a token and return its payload (the seed API; synchronous).

        Args:
            token: The compact JWT.
            token_type: ``"access"`` (default) or ``"refresh"``.

        Raises:
            InvalidTokenError: A subclass naming the reason; all are 401s.
            ConfigurationError: A revocation store is configured: use
                :meth:`verify_token_async`, which consults it, so a revoked token is never
                accepted by accident.
        """
        if self.revocation_store is not None:
            raise ConfigurationError(
                "This TokenManager has a revocation store; call 'await verify_token_async(token)' instead."
            )
        return self._decode(token, token_type)

    async def verify_token_async(self, token: str | bytes, token_type: TokenType = "access") -> dict[str, Any]:  # noqa: S107 - a token type, not a password
        """Verify a token, including the revocation check, and return its payload.

        Raises:
            InvalidTokenError: A subclass naming the reason (``TokenRevokedError`` if revoked).
        """
        payload = self._decode(token, token_type)
        if self.revocation_store is not None:
            await check_revocation(self.revocation_store, payload)
        return payload

    # ------------------------------------------------------------------ refresh and revoke

    def _store(self, action: str) -> RevocationStore:
        if self.revocation_store is None:
            raise ConfigurationError(
                f"{action} needs a revocation store: pass revocation_store=InMemoryRevocationStore() "
                "or RedisRevocationStore(redis) to TokenManager."
            )
        return self.revocation_store

    async def refresh(self, refresh_token: str | bytes, *, claims: Mapping[str, Any] | None = None) -> TokenPair:
        """Exchange a refresh token for a new pair of the same session; the old refresh token is revoked.

        A refresh token works once. A second use — a replay, or a racing request — is
        treated as theft (RFC 9700 §4.14.2): it revokes the whole session (every token
        of its family, the attacker's and the victim's) and raises :class:`TokenRevokedError`.

        Args:
            refresh_token: The refresh token.
            claims: Application claims for the new access token (reload roles and
                permissions from your user store here).

        Raises:
            InvalidTokenError: The refresh token is invalid, of the wrong type or revoked.
            ConfigurationError: No revocation store is configured.
        """
        store = self._store("refresh()")
        payload = self._decode(refresh_token, "refresh")
        subject = payload.get("sub")
        if not isinstance(subject, str):
            raise MissingClaimError("The refresh token lacks the 'sub' claim.", {"claim": "sub"})
        family = payload.get(FAMILY_CLAIM)
        family = family if isinstance(family, str) and family else None
        state = await token_status(store, payload)
        error = session_revoked(state, payload["iat"])
        if error is not None:
            raise error
        if state.token or not await store.revoke(payload["jti"], payload["exp"] + self.leeway):
            if family is not None:
                await store.revoke(FAMILY_PREFIX + family, self._clock() + self.refresh_ttl + self.leeway)
            raise TokenRevokedError("The refresh token was already used, so this session is revoked; sign in again.")
        return self.create_token_pair(subject, claims, family=family)

    async def revoke(self, token: str | bytes) -> None:
        """Revoke a valid access or refresh token until it expires.

        Raises:
            InvalidTokenError: The token is not valid (an invalid token needs no revoking).
            ConfigurationError: No revocation store is configured.
        """
        store = self._store("revoke()")
        payload = self._decode(token, None)
        await store.revoke(payload["jti"], payload["exp"] + self.leeway)

    async def revoke_session(self, token: str | bytes) -> None:
        """Revoke every token of the session (family) ``token`` belongs to, e.g. on logout.

        Raises:
            InvalidTokenError: The token is not valid.
            ConfigurationError: No revocation store is configured.
        """
        store = self._store("revoke_session()")
        payload = self._decode(token, None)
        family = payload.get(FAMILY_CLAIM)
        if isinstance(family, str) and family:
            await store.revoke(FAMILY_PREFIX + family, self._clock() + self.refresh_ttl + self.leeway)
        await store.revoke(payload["jti"], payload["exp"] + self.leeway)

    async def revoke_all(self, subject: str) -> None:
        """Sign ``subject`` out everywhere: every token issued to it until now is refused.

        One write; every verification reads it in the same round trip as the ``jti``
        check. Tokens issued after the call (a new sign-in) are accepted.

        Raises:
            ValidationError: ``subject`` is empty or not a string.
            ConfigurationError: No revocation store is configured.
        """
        store = self._store("revoke_all()")
        if not isinstance(subject, str) or not subject:
            raise ValidationError("revoke_all needs a non-empty subject string.")
        now = self._clock()
        lifetime = max(self.access_ttl, self.refresh_ttl) + self.leeway
        await store.revoke_subject(subject, floor_ms(now), now + lifetime)

    def jwks(self) -> dict[str, Any]:
        """Return the JWKS document of the public keys, to serve to verifying services."""
        return self.keys.to_jwks()

    def __repr__(self) -> str:
        return f"TokenManager(keys={self.keys!r}, issuer={self.issuer!r})"
