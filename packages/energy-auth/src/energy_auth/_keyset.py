"""Key sets: one signing key, several verification keys, looked up by ``kid``; JWKS in and out."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from energy_common.exceptions import ConfigurationError

from energy_auth._keys import JWTKey

__all__ = ["KeySet"]

logger = logging.getLogger("energy_auth.keys")


class KeySet:
    """The keys a service signs and verifies with, for rotation without downtime.

    One key signs (``signing_kid``, or the first key holding private material); every
    key verifies. To rotate: add the new key as signing key and keep the old one as a
    verification key until the last token it signed has expired, then drop it.

    Args:
        keys: The keys; when there are several, each needs a distinct ``kid``.
        signing_kid: The ``kid`` of the key that signs new tokens.

    Raises:
        ConfigurationError: No keys, duplicate or missing ``kid`` values, or an unknown
            ``signing_kid``.

    Example:
        >>> new, old = JWTKey.generate("EdDSA"), JWTKey.generate("EdDSA")
        >>> keys = KeySet([new, old], signing_kid=new.kid)
        >>> keys.signing_key is new, len(keys.to_jwks()["keys"])
        (True, 2)
    """

    __slots__ = ("_by_kid", "_default", "_keys", "algorithms", "signing_key")

    def __init__(self, keys: Iterable[JWTKey], *, signing_kid: str | None = None) -> None:
        self._keys: tuple[JWTKey, ...] = tuple(keys)
        if not self._keys:
            raise ConfigurationError("A key set needs at least one key.")
        self._by_kid: dict[str, JWTKey] = {}
        for key in self._keys:
            if key.kid is None:
                if len(self._keys) > 1:
                    raise ConfigurationError("Every key in a key set of several keys needs a kid.")
                continue
            if key.kid in self._by_kid:
                raise ConfigurationError(f"The kid {key.kid!r} appears twice in the key set.")
            self._by_kid[key.kid] = key
        self._default: JWTKey | None = self._keys[0] if len(self._keys) == 1 else None
        if signing_kid is not None:
            chosen = self._by_kid.get(signing_kid)
            if chosen is None or not chosen.can_sign:
                raise ConfigurationError(f"The signing kid {signing_kid!r} is not a private key of this key set.")
            self.signing_key: JWTKey | None = chosen
        else:
            self.signing_key = next((key for key in self._keys if key.can_sign), None)
        self.algorithms: frozenset[str] = frozenset(key.algorithm for key in self._keys)

    def get(self, kid: str | None) -> JWTKey | None:
        """Return the key for ``kid``; a token without ``kid`` matches only a one-key set."""
        if kid is None:
            return self._default
        return self._by_kid.get(kid)

    def __iter__(self) -> Iterator[JWTKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    def to_jwks(self) -> dict[str, Any]:
        """Return the JWKS document of the public keys (HMAC keys are never included).

        Serve it (e.g. at ``/.well-known/jwks.json``) so other services verify tokens
        without holding the private key.
        """
        return {"keys": [key.to_jwk() for key in self._keys if not key.is_symmetric]}

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any], *, algorithms: Iterable[str]) -> KeySet:
        """Build a verification key set from a JWKS document.

        Entries that are not signature keys, symmetric, of another algorithm or
        malformed are skipped (and logged), so one odd entry does not break the rest.

        Args:
            jwks: The parsed JWKS document ``{"keys": [...]}``.
            algorithms: The algorithms this verifier accepts.

        Raises:
            ConfigurationError: The document has no usable key.
        """
        allowed = frozenset(algorithms)
        entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(entries, list):
            raise ConfigurationError("The JWKS document has no 'keys' list.")
        keys: list[JWTKey] = []
        for entry in entries:
            if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = JWTKey.from_jwk(entry)
            except ConfigurationError as exc:
                logger.warning("Skipping a JWKS entry: %s", exc)
                continue
            if key.algorithm in allowed:
                keys.append(key)
        if not keys:
            raise ConfigurationError("The JWKS document holds no usable signature key for the allowed algorithms.")
        return cls(keys)

    def __repr__(self) -> str:
        signing = self.signing_key.kid if self.signing_key is not None else None
        return f"KeySet({len(self._keys)} keys, signing_kid={signing!r})"
