"""Signing and verification keys: HMAC secrets, PEM key pairs, ``kid`` and strength checks.

A :class:`JWTKey` binds one key to exactly one algorithm, so the algorithm a token is
checked with always comes from the key the verifier holds, never from the token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from energy_common.exceptions import ConfigurationError
from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.exceptions import InvalidKeyError

from energy_auth._errors import WeakKeyError

__all__ = ["SUPPORTED_ALGORITHMS", "JWTKey"]

HMAC_MIN_BYTES: dict[str, int] = {"HS256": 32, "HS384": 48, "HS512": 64}
_RSA = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_CURVES: dict[str, type[ec.EllipticCurve]] = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
_OKP = frozenset({"EdDSA"})
SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(HMAC_MIN_BYTES) | _RSA | frozenset(_EC_CURVES) | _OKP
"""Every algorithm a :class:`JWTKey` can carry (``none`` is never one of them)."""

MIN_RSA_BITS = 2048
MIN_DISTINCT_BYTES = 8
_IMPLEMENTATIONS: dict[str, Algorithm] = get_default_algorithms()
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


def _hint(n_bytes: int) -> str:
    return f'Generate one with: python -c "import secrets; print(secrets.token_urlsafe({n_bytes}))"'


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in SUPPORTED_ALGORITHMS:
        supported = ", ".join(sorted(SUPPORTED_ALGORITHMS))
        raise ConfigurationError(f"Unsupported JWT algorithm {algorithm!r}; use one of: {supported}.")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class JWTKey:
    """One key bound to one algorithm, with an optional key id (``kid``).

    Build it with :meth:`hmac`, :meth:`from_pem`, :meth:`generate` or :meth:`from_jwk`.
    Asymmetric keys get the RFC 7638 thumbprint as default ``kid``. The key's secret
    material never appears in ``repr``.

    Example:
        >>> key = JWTKey.generate("EdDSA")
        >>> key.algorithm, key.can_sign
        ('EdDSA', True)
    """

    __slots__ = ("_impl", "_private", "_verifying", "algorithm", "kid")

    def __init__(self, algorithm: str, kid: str | None, private: Any, verifying: Any) -> None:
        """Low-level constructor; prefer the class methods, which check key strength."""
        _check_algorithm(algorithm)
        self.algorithm = algorithm
        self.kid = kid
        self._private = private
        self._verifying = verifying
        self._impl = _IMPLEMENTATIONS[algorithm]

    # ------------------------------------------------------------------ constructors

    @classmethod
    def hmac(cls, secret: str | bytes, algorithm: str = "HS256", *, kid: str | None = None) -> JWTKey:
        """Build an HMAC key, refusing secrets that are short or low in entropy.

        Args:
            secret: The shared secret (``str`` is encoded as UTF-8).
            algorithm: ``HS256`` (>= 32 bytes), ``HS384`` (>= 48) or ``HS512`` (>= 64).
            kid: Key id for rotation; needed when a key set holds several keys.

        Raises:
            WeakKeyError: The secret is too short, too repetitive or looks like a PEM/JWK key.
            ConfigurationError: The algorithm is not an HMAC algorithm.
        """
        if algorithm not in HMAC_MIN_BYTES:
            raise ConfigurationError(f"{algorithm!r} is not an HMAC algorithm; use HS256, HS384 or HS512.")
        if not isinstance(secret, str | bytes):
            raise ConfigurationError("The HMAC secret must be str or bytes.")
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        minimum = HMAC_MIN_BYTES[algorithm]
        if len(raw) < minimum:
            raise WeakKeyError(
                f"The {algorithm} secret is {len(raw)} bytes long; at least {minimum} random bytes are required. "
                + _hint(minimum),
                {"algorithm": algorithm, "min_bytes": minimum},
            )
        if len(set(raw)) < MIN_DISTINCT_BYTES:
            raise WeakKeyError(
                f"The {algorithm} secret is too repetitive to be random. " + _hint(minimum),
                {"algorithm": algorithm},
            )
        try:
            prepared = _IMPLEMENTATIONS[algorithm].prepare_key(raw)
        except InvalidKeyError as exc:
            raise WeakKeyError(
                f"The {algorithm} secret looks like an asymmetric key or a JWK, not a random secret. " + _hint(minimum)
            ) from exc
        return cls(algorithm, kid, prepared, prepared)

    @classmethod
    def from_pem(
        cls, pem: str | bytes, algorithm: str, *, kid: str | None = None, password: bytes | None = None
    ) -> JWTKey:
        """Load a PEM private key (can sign and verify) or public key (verifies only).

        Args:
            pem: The PEM text.
            algorithm: An RS*, PS*, ES* or EdDSA algorithm matching the key type.
            kid: Key id; defaults to the RFC 7638 thumbprint of the public key.
            password: Password of an encrypted private key.

        Raises:
            ConfigurationError: The PEM cannot be parsed or does not fit the algorithm.
            WeakKeyError: An RSA key shorter than 2048 bits.
        """
        _check_algorithm(algorithm)
        if algorithm in HMAC_MIN_BYTES:
            raise ConfigurationError(f"{algorithm} takes a random secret, not a PEM key; use JWTKey.hmac().")
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        private: Any = None
        try:
            if b"PRIVATE KEY" in data:
                private = serialization.load_pem_private_key(data, password=password)
                public: Any = private.public_key()
            else:
                public = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigurationError(
                f"Cannot load the PEM key for {algorithm}: {exc}. Pass a PEM private or public key."
            ) from exc
        return cls._from_objects(algorithm, private, public, kid)

    @classmethod
    def generate(cls, algorithm: str = "EdDSA", *, kid: str | None = None) -> JWTKey:
        """Generate a fresh key for ``algorithm`` (RSA keys have 3072 bits).

        Example:
            >>> JWTKey.generate("HS256", kid="k1").kid
            'k1'
        """
        _check_algorithm(algorithm)
        if algorithm in HMAC_MIN_BYTES:
            return cls.hmac(secrets.token_bytes(HMAC_MIN_BYTES[algorithm]), algorithm, kid=kid)
        private: Any
        if algorithm in _RSA:
            private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        elif algorithm in _EC_CURVES:
            private = ec.generate_private_key(_EC_CURVES[algorithm]())
        else:
            private = ed25519.Ed25519PrivateKey.generate()
        return cls._from_objects(algorithm, private, private.public_key(), kid)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any], algorithm: str | None = None) -> JWTKey:
        """Load the public part of an asymmetric JWK (private members are ignored).

        Args:
            jwk: The JWK object (``kty``, ``crv``/``n``/``e``/``x``/``y``, optional ``kid``, ``alg``).
            algorithm: The algorithm to bind; defaults to the JWK's ``alg`` or its key type.

        Raises:
            ConfigurationError: The JWK is symmetric, malformed or does not fit the algorithm.
        """
        kty = jwk.get("kty")
        alg = algorithm or jwk.get("alg") or _default_algorithm(jwk)
        if kty == "oct" or not isinstance(alg, str) or alg in HMAC_MIN_BYTES:
            raise ConfigurationError("Only asymmetric public JWKs (RSA, EC, OKP) can be loaded.")
        _check_algorithm(alg)
        public_only = {k: v for k, v in jwk.items() if k not in {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}}
        try:
            loaded: Any = _IMPLEMENTATIONS[alg].from_jwk(dict(public_only))
        except (InvalidKeyError, ValueError, TypeError, KeyError) as exc:
            raise ConfigurationError(f"Cannot load the JWK for {alg}: {exc}.") from exc
        kid = jwk.get("kid")
        return cls._from_objects(alg, None, loaded, kid if isinstance(kid, str) else None)

    @classmethod
    def _from_objects(cls, algorithm: str, private: Any, public: Any, kid: str | None) -> JWTKey:
        if algorithm in _RSA:
            if not isinstance(public, rsa.RSAPublicKey):
                raise ConfigurationError(f"{algorithm} needs an RSA key.")
            if public.key_size < MIN_RSA_BITS:
                raise WeakKeyError(
                    f"The RSA key has {public.key_size} bits; at least {MIN_RSA_BITS} are required. "
                    "Generate one with: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072"
                )
        elif algorithm in _EC_CURVES:
            curve = _EC_CURVES[algorithm]
            if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, curve):
                raise ConfigurationError(f"{algorithm} needs an EC key on curve {curve.name}.")
        elif not isinstance(public, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            raise ConfigurationError("EdDSA needs an Ed25519 or Ed448 key.")
        key = cls(algorithm, kid, private, public)
        if key.kid is None:
            key.kid = key.thumbprint()
        return key

    # ------------------------------------------------------------------ properties

    @property
    def can_sign(self) -> bool:
        """Whether the key holds private (or secret) material."""
        return self._private is not None

    @property
    def is_symmetric(self) -> bool:
        """Whether this is an HMAC key (never exported, never published)."""
        return self.algorithm in HMAC_MIN_BYTES

    def sign(self, signing_input: bytes) -> bytes:
        """Sign ``signing_input`` (``base64url(header) "." base64url(payload)``).

        Raises:
            ConfigurationError: The key holds only public material.
        """
        if self._private is None:
            raise ConfigurationError(f"Key {self.kid!r} is a public key and cannot sign; load the private key.")
        return self._impl.sign(signing_input, self._private)

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """Tell whether ``signature`` is valid for ``signing_input`` (never raises on bad input)."""
        try:
            return bool(self._impl.verify(signing_input, self._verifying, signature))
        except (ValueError, TypeError):
            return False

    def to_jwk(self) -> dict[str, Any]:
        """Return the public JWK (with ``kid``, ``alg`` and ``use``) for a JWKS document.

        Raises:
            ConfigurationError: For HMAC keys, which must never be published.
        """
        if self.is_symmetric:
            raise ConfigurationError("HMAC keys are secret and cannot be exported as a public JWK.")
        jwk: dict[str, Any] = dict(self._impl.to_jwk(self._verifying, as_dict=True))
        jwk.update({"alg": self.algorithm, "use": "sig"})
        if self.kid is not None:
            jwk["kid"] = self.kid
        return jwk

    def thumbprint(self) -> str:
        """Return the RFC 7638 JWK SHA-256 thumbprint of the public key (base64url)."""
        jwk = self.to_jwk()
        members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
        canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("utf-8")
        return _b64(hashlib.sha256(canonical).digest())

    def private_pem(self) -> bytes:
        """Export the private key as unencrypted PKCS#8 PEM (store it in your secret manager).

        Raises:
            ConfigurationError: For HMAC or public-only keys.
        """
        if self.is_symmetric or self._private is None:
            raise ConfigurationError("Only asymmetric private keys can be exported as PEM.")
        return bytes(
            self._private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    def public_pem(self) -> bytes:
        """Export the public key as SubjectPublicKeyInfo PEM.

        Raises:
            ConfigurationError: For HMAC keys.
        """
        if self.is_symmetric:
            raise ConfigurationError("HMAC keys have no public part.")
        return bytes(
            self._verifying.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    def __repr__(self) -> str:
        kind = "private" if self.can_sign else "public"
        if self.is_symmetric:
            kind = "secret"
        return f"JWTKey(algorithm={self.algorithm!r}, kid={self.kid!r}, {kind})"


def _default_algorithm(jwk: Mapping[str, Any]) -> str | None:
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "RSA":
        return "RS256"
    if kty == "EC":
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(str(crv))
    if kty == "OKP" and crv in {"Ed25519", "Ed448"}:
        return "EdDSA"
    return None
