"""Verification (never creation) of the password hashes passlib's common schemes made.

Services moving off the seed ``libs/`` hold user tables hashed by passlib. These pure
functions check a password against such a hash so the user can log in once and be
rehashed with argon2id (see :class:`~energy_auth.PasswordHasher` ``legacy_schemes``):

- ``bcrypt``: ``$2a$``, ``$2b$``, ``$2y$`` (the ``bcrypt`` package, extra ``legacy``);
- ``pbkdf2_sha256`` / ``pbkdf2_sha512``: passlib's ``$pbkdf2-sha256$<rounds>$<salt>$<hash>``
  with its "adapted base64" (``.`` for ``+``, no padding), via :func:`hashlib.pbkdf2_hmac`;
- ``sha256_crypt`` / ``sha512_crypt``: ``$5$`` / ``$6$`` as specified by Ulrich Drepper
  ("Unix crypt using SHA-256 and SHA-512"), implemented here on :mod:`hashlib` (the
  ``crypt`` module is gone in Python 3.13).

A malformed, truncated or foreign hash verifies as ``False``; nothing here raises for
bad input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any, Literal, get_args

__all__ = ["LEGACY_SCHEMES", "LegacyScheme", "identify_scheme", "verify_legacy"]

LegacyScheme = Literal["bcrypt", "pbkdf2_sha256", "pbkdf2_sha512", "sha256_crypt", "sha512_crypt"]
"""The passlib scheme names (``passlib.hash.<name>``) whose hashes can be verified."""

LEGACY_SCHEMES: frozenset[str] = frozenset(get_args(LegacyScheme))

BCRYPT_MAX_BYTES = 72
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_PBKDF2 = re.compile(r"\$pbkdf2-(sha256|sha512)\$([1-9][0-9]{0,9})\$([./A-Za-z0-9]*)\$([./A-Za-z0-9]+)")
_SHA_CRYPT = re.compile(r"\$([56])\$(?:rounds=([0-9]{1,10})\$)?([^$:\n]{0,16})\$([./0-9A-Za-z]+)")
_PREFIXES: tuple[tuple[str, LegacyScheme], ...] = (
    ("$2a$", "bcrypt"),
    ("$2b$", "bcrypt"),
    ("$2y$", "bcrypt"),
    ("$pbkdf2-sha256$", "pbkdf2_sha256"),
    ("$pbkdf2-sha512$", "pbkdf2_sha512"),
    ("$5$", "sha256_crypt"),
    ("$6$", "sha512_crypt"),
)
# Hostile-free inputs come from our own database, but a corrupted row must not pin a CPU.
MAX_PBKDF2_ROUNDS = 10_000_000
_CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# The byte order of the final encoding (Drepper's spec, step 22), in groups of three.
_SHA256_ORDER = (
    (0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
    (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29), (None, 31, 30),
)  # fmt: skip
_SHA512_ORDER = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
    (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
    (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41),
    (None, None, 63),
)  # fmt: skip


def identify_scheme(stored_hash: object) -> LegacyScheme | None:
    """Return the legacy scheme a stored hash was made with, from its prefix (``None``: not one)."""
    if not isinstance(stored_hash, str):
        return None
    return next((scheme for prefix, scheme in _PREFIXES if stored_hash.startswith(prefix)), None)


def _bcrypt(password: bytes, stored_hash: str) -> bool:
    if _BCRYPT.fullmatch(stored_hash) is None:
        return False
    import bcrypt  # noqa: PLC0415 - only when a bcrypt hash is met; PasswordHasher checked it is installed

    # bcrypt only ever used the first 72 bytes (passlib truncated silently; bcrypt >= 5
    # raises instead): hash what the original library hashed.
    try:
        return bool(bcrypt.checkpw(password[:BCRYPT_MAX_BYTES], stored_hash.encode("ascii")))
    except ValueError:
        return False


def _ab64_decode(text: str) -> bytes:
    return base64.b64decode(text.replace(".", "+") + "=" * (-len(text) % 4), validate=True)


def _pbkdf2(password: bytes, stored_hash: str) -> bool:
    match = _PBKDF2.fullmatch(stored_hash)
    if match is None:
        return False
    digest, rounds_text, salt_text, checksum_text = match.groups()
    rounds = int(rounds_text)
    try:
        salt, checksum = _ab64_decode(salt_text), _ab64_decode(checksum_text)
    except (binascii.Error, ValueError):
        return False
    if rounds > MAX_PBKDF2_ROUNDS or len(checksum) != hashlib.new(digest).digest_size:
        return False
    computed = hashlib.pbkdf2_hmac(digest, password, salt, rounds)
    return hmac.compare_digest(computed, checksum)


def _repeat(digest: bytes, length: int) -> bytes:
    """``digest`` repeated and cut to ``length`` bytes (steps 4/16/20 of the spec)."""
    return (digest * (length // len(digest) + 1))[:length]


def _crypt_b64(data: bytes, order: tuple[tuple[int | None, ...], ...]) -> str:
    out: list[str] = []
    for group in order:
        value = 0
        for index in group:
            value = (value << 8) | (0 if index is None else data[index])
        count = 4 - sum(index is None for index in group)
        for _ in range(count):
            out.append(_CRYPT_ALPHABET[value & 0x3F])
            value >>= 6
    return "".join(out)


def sha_crypt_checksum(password: bytes, salt: bytes, rounds: int, digest: str) -> str:
    """Compute the SHA-crypt checksum (the part after the last ``$``) per Drepper's spec.

    Args:
        password: The password bytes.
        salt: At most 16 salt bytes.
        rounds: 1000..999,999,999 (the caller clamps as the spec says).
        digest: ``"sha256"`` or ``"sha512"``.
    """
    new: Callable[..., Any] = getattr(hashlib, digest)
    size = len(password)
    alternate = new(password + salt + password).digest()
    context = new(password + salt + _repeat(alternate, size))
    bits = size
    while bits:
        context.update(alternate if bits & 1 else password)
        bits >>= 1
    result = context.digest()
    p_bytes = _repeat(new(password * size).digest(), size)
    s_bytes = _repeat(new(salt * (16 + result[0])).digest(), len(salt))
    for i in range(rounds):
        context = new(p_bytes if i & 1 else result)
        if i % 3:
            context.update(s_bytes)
        if i % 7:
            context.update(p_bytes)
        context.update(result if i & 1 else p_bytes)
        result = context.digest()
    return _crypt_b64(result, _SHA256_ORDER if digest == "sha256" else _SHA512_ORDER)


def _sha_crypt(password: bytes, stored_hash: str) -> bool:
    match = _SHA_CRYPT.fullmatch(stored_hash)
    if match is None:
        return False
    kind, rounds_text, salt, checksum = match.groups()
    digest, length = ("sha256", 43) if kind == "5" else ("sha512", 86)
    if len(checksum) != length:
        return False
    rounds = 5000 if rounds_text is None else min(max(int(rounds_text), 1000), 999_999_999)
    computed = sha_crypt_checksum(password, salt.encode("utf-8"), rounds, digest)
    return hmac.compare_digest(computed, checksum)


_VERIFIERS: dict[str, Callable[[bytes, str], bool]] = {
    "bcrypt": _bcrypt,
    "pbkdf2_sha256": _pbkdf2,
    "pbkdf2_sha512": _pbkdf2,
    "sha256_crypt": _sha_crypt,
    "sha512_crypt": _sha_crypt,
}


def verify_legacy(scheme: LegacyScheme, password: bytes, stored_hash: str) -> bool:
    """Tell whether ``password`` matches ``stored_hash`` made with ``scheme``.

    The scheme must be the one :func:`identify_scheme` names for the hash; a hash of
    another scheme, malformed or truncated, returns ``False``.
    """
    if identify_scheme(stored_hash) != scheme:
        return False
    return _VERIFIERS[scheme](password, stored_hash)
