"""JWKS-backed verification for services that only verify tokens.

The key set is fetched through a pluggable async fetcher (so energy-auth needs no HTTP
library); :func:`jwks_url_fetcher` is a stdlib one. A token naming an unknown ``kid``
triggers a refetch, at most once per ``min_refetch_interval``; a failed fetch keeps the
last good key set.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from energy_common.exceptions import ConfigurationError

from energy_auth._claims import ClaimRules, TokenType, validate_claims
from energy_auth._errors import JWKSUnavailableError, UnknownKeyError
from energy_auth._jose import DEFAULT_MAX_TOKEN_BYTES, parse_token, select_key, verify_signature
from energy_auth._keyset import KeySet
from energy_auth._revocation import RevocationStore, check_revocation
from energy_auth._tokens import audiences_of, seconds

__all__ = ["JWKSFetcher", "JWKSVerifier", "jwks_url_fetcher"]

logger = logging.getLogger("energy_auth.jwks")

JWKSFetcher = Callable[[], Awaitable[Mapping[str, Any]]]
"""An async callable returning the parsed JWKS document ``{"keys": [...]}``."""


class JWKSVerifier:
    """Verify tokens against the public keys an issuer publishes as JWKS.

    Args:
        fetcher: Returns the JWKS document; called on first use, when the key set is
            older than ``max_age`` and on an unknown ``kid`` (rate-limited).
        issuer: Required ``iss``.
        audience: Accepted ``aud`` value(s).
        algorithms: Algorithms accepted (default RS256, ES256, EdDSA; never HMAC).
        leeway: Clock skew tolerated on exp/nbf/iat (default 10 seconds).
        max_age: Refetch a key set older than this (default 1 hour).
        min_refetch_interval: At most one refetch per interval (default 30 seconds), so
            tokens with random ``kid`` values cannot hammer the issuer.
        revocation_store: Checked for revoked ``jti`` values when given.
        max_token_bytes: Longer tokens are refused before parsing (default 8 KiB).
        clock: Returns the current Unix time, for claim checks.

    Example:
        >>> async def fetch() -> dict:
        ...     return issuer_tokens.jwks()  # or: jwks_url_fetcher("https://auth/.well-known/jwks.json")
        >>> verifier = JWKSVerifier(fetch, issuer="auth-service")  # doctest: +SKIP
        >>> claims = await verifier.verify_token_async(token)  # doctest: +SKIP
    """

    def __init__(
        self,
        fetcher: JWKSFetcher,
        *,
        issuer: str | None = None,
        audience: str | Iterable[str] | None = None,
        algorithms: Iterable[str] = ("RS256", "ES256", "EdDSA"),
        leeway: timedelta | float = timedelta(seconds=10),
        max_age: timedelta | float = timedelta(hours=1),
        min_refetch_interval: timedelta | float = timedelta(seconds=30),
        revocation_store: RevocationStore | None = None,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetcher = fetcher
        self.algorithms = frozenset(algorithms)
        if not self.algorithms or any(alg.startswith("HS") for alg in self.algorithms):
            raise ConfigurationError("A JWKS verifier accepts asymmetric algorithms only (RS*, PS*, ES*, EdDSA).")
        self._rules = ClaimRules(issuer, audiences_of(audience), seconds(leeway, "leeway"), clock)
        self.max_age = seconds(max_age, "max_age")
        self.min_refetch_interval = seconds(min_refetch_interval, "min_refetch_interval")
        self.revocation_store = revocation_store
        self.max_token_bytes = max_token_bytes
        self.keys: KeySet | None = None
        self.fetch_count = 0
        self._fetched_at: float | None = None  # monotonic time of the last good fetch
        self._attempted_at: float | None = None  # monotonic time of the last attempt
        self._lock = asyncio.Lock()

    async def refresh_keys(self, *, force: bool = True) -> bool:
        """Fetch the key set now; return whether a new key set was installed.

        With ``force=False`` the call is skipped inside ``min_refetch_interval`` of the
        last attempt. A failure is logged and the last good key set stays in use.
        """
        async with self._lock:
            now = time.monotonic()
            if not force and self._attempted_at is not None and now - self._attempted_at < self.min_refetch_interval:
                return False
            self._attempted_at = now
            self.fetch_count += 1
            try:
                document = await self._fetcher()
                keys = KeySet.from_jwks(document, algorithms=self.algorithms)
            except Exception as exc:  # noqa: BLE001 - any fetcher failure keeps the last good key set
                logger.warning("JWKS fetch failed; keeping the last good key set: %s: %s", type(exc).__name__, exc)
                return False
            self.keys = keys
            self._fetched_at = time.monotonic()
            return True

    async def _current_keys(self) -> KeySet:
        stale = self._fetched_at is None or time.monotonic() - self._fetched_at >= self.max_age
        if stale:
            await self.refresh_keys(force=False)
        if self.keys is None:
            raise JWKSUnavailableError()
        return self.keys

    async def verify_token_async(self, token: str | bytes, token_type: TokenType = "access") -> dict[str, Any]:  # noqa: S107 - a token type, not a password
        """Verify a token with the published keys and return its payload.

        Raises:
            InvalidTokenError: A subclass naming the reason; ``UnknownKeyError`` when the
                ``kid`` is still unknown after a (rate-limited) refetch.
            JWKSUnavailableError: No key set was ever fetched successfully (503).
        """
        parsed = parse_token(token, self.max_token_bytes)
        keys = await self._current_keys()
        try:
            key = select_key(parsed, keys)
        except UnknownKeyError:
            if not await self.refresh_keys(force=False) or self.keys is None:
                raise
            key = select_key(parsed, self.keys)
        payload = verify_signature(parsed, key)
        validate_claims(payload, token_type, self._rules)
        if self.revocation_store is not None:
            await check_revocation(self.revocation_store, payload)
        return payload


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def jwks_url_fetcher(url: str, *, timeout: float = 5.0, max_bytes: int = 1_048_576) -> JWKSFetcher:
    """Return a fetcher that GETs a JWKS document with the standard library (in a thread).

    Args:
        url: An ``https://`` URL (``http://`` only for loopback hosts).
        timeout: Seconds for connect and read.
        max_bytes: Larger responses are refused.

    Raises:
        ConfigurationError: The URL is not https (or loopback http).
    """
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname or "")):
        raise ConfigurationError("The JWKS URL must use https:// (http:// only for loopback hosts).")

    def fetch() -> Mapping[str, Any]:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked above
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            body = response.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise ValueError(f"the JWKS document is larger than {max_bytes} bytes")
        document = json.loads(body)
        if not isinstance(document, dict):
            raise TypeError("the JWKS document is not a JSON object")
        return document

    async def fetcher() -> Mapping[str, Any]:
        return await asyncio.to_thread(fetch)

    return fetcher
