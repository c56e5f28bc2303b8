"""Password hashing with argon2id at RFC 9106 / OWASP strength, sync and async.

Hashes made by passlib's common schemes (bcrypt, PBKDF2, SHA-crypt) verify when the
service opts in with ``legacy_schemes``, and are upgraded to argon2id on login.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Self

import argon2
from argon2.exceptions import HashingError, InvalidHashError, VerificationError
from energy_common._extras import missing_extra
from energy_common.exceptions import ConfigurationError

from energy_auth._errors import InvalidCredentialsError, PasswordPolicyError
from energy_auth._legacy_hashes import LEGACY_SCHEMES, LegacyScheme, identify_scheme, verify_legacy

__all__ = ["DEFAULT_MAX_PASSWORD_BYTES", "PasswordHasher"]

DEFAULT_MAX_PASSWORD_BYTES = 1024


class PasswordHasher:
    """Hash and verify passwords with argon2id.

    The defaults are RFC 9106's second recommended option (t=3, m=64 MiB, p=4), above
    OWASP's minimum (t=2, m=19 MiB, p=1). A hash costs tens of milliseconds and 64 MiB,
    so in async code use :meth:`hash_async` / :meth:`verify_async`, which run in a
    bounded thread pool and never block the event loop.

    Args:
        time_cost: Iterations.
        memory_cost: Memory in KiB.
        parallelism: Lanes.
        hash_len: Hash length in bytes.
        salt_len: Random salt length in bytes.
        max_password_bytes: Longer passwords (UTF-8) are refused, against hashing DoS.
        max_workers: Threads of the executor behind the async methods; with ``m`` MiB
            per hash this bounds memory to ``max_workers * m``.
        legacy_schemes: passlib schemes whose hashes :meth:`verify` also accepts (opt-in,
            for user tables made before the move): any of ``"bcrypt"`` (extra
            ``legacy``), ``"pbkdf2_sha256"``, ``"pbkdf2_sha512"``, ``"sha256_crypt"``,
            ``"sha512_crypt"``. Such a hash always :meth:`needs_rehash`, so
            :meth:`verify_and_update` and :meth:`authenticate` return its argon2id
            replacement on the first successful login.

    Raises:
        ConfigurationError: ``legacy_schemes`` names a scheme that is not supported.
        ImportError: ``"bcrypt"`` is listed but the ``bcrypt`` package is missing; the
            message names the extra (``pip install 'energy-auth[legacy]'``).

    Example:
        >>> hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # cheap, for tests
        >>> stored = hasher.hash("correct horse battery staple")
        >>> hasher.verify("correct horse battery staple", stored), hasher.verify("wrong", stored)
        (True, False)
    """

    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_cost: int = 65536,
        parallelism: int = 4,
        hash_len: int = 32,
        salt_len: int = 16,
        max_password_bytes: int = DEFAULT_MAX_PASSWORD_BYTES,
        max_workers: int = 2,
        legacy_schemes: Iterable[LegacyScheme] = (),
    ) -> None:
        schemes = frozenset(legacy_schemes)
        unknown = schemes - LEGACY_SCHEMES
        if unknown:
            raise ConfigurationError(
                f"Unsupported legacy password schemes {sorted(unknown)}; choose from {sorted(LEGACY_SCHEMES)}.",
                {"unsupported": sorted(unknown)},
            )
        if "bcrypt" in schemes:
            try:
                import bcrypt  # noqa: F401, PLC0415 - checked here so a missing extra fails at startup
            except ImportError as exc:
                raise missing_extra("energy-auth", "legacy", exc) from exc
        self.legacy_schemes: frozenset[str] = schemes
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=hash_len,
            salt_len=salt_len,
            type=argon2.Type.ID,
        )
        self.time_cost = time_cost
        self.memory_cost = memory_cost
        self.parallelism = parallelism
        self.max_password_bytes = max_password_bytes
        self.max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        self._dummy_hash: str | None = None

    def _encode(self, password: str) -> bytes:
        if not isinstance(password, str):
            raise PasswordPolicyError("The password must be a string.")
        if not password:
            raise PasswordPolicyError("The password must not be empty.")
        raw = password.encode("utf-8", errors="surrogatepass")
        if len(raw) > self.max_password_bytes:
            raise PasswordPolicyError(
                f"The password is longer than {self.max_password_bytes} bytes; choose a shorter one.",
                {"max_bytes": self.max_password_bytes},
            )
        return raw

    def hash(self, password: str) -> str:
        """Hash ``password`` with a fresh random salt; return the PHC string (``$argon2id$...``).

        Raises:
            PasswordPolicyError: The password is empty, not a string or too long.
        """
        raw = self._encode(password)
        try:
            return self._hasher.hash(raw)
        except HashingError as exc:  # memory allocation failure and the like
            raise PasswordPolicyError("The password could not be hashed; try again.") from exc

    def verify(self, password: str, stored_hash: str) -> bool:
        """Tell whether ``password`` matches ``stored_hash``.

        Never raises for a wrong, empty or over-long password or a malformed hash: all
        of those return ``False``.
        """
        try:
            raw = self._encode(password)
        except PasswordPolicyError:
            return False
        if isinstance(stored_hash, str) and stored_hash.startswith("$argon2"):
            try:
                return self._hasher.verify(stored_hash, raw)
            except (VerificationError, InvalidHashError, ValueError, TypeError):
                return False
        scheme = identify_scheme(stored_hash)  # None for anything else, including non-strings
        return scheme is not None and scheme in self.legacy_schemes and verify_legacy(scheme, raw, stored_hash)

    def needs_rehash(self, stored_hash: str) -> bool:
        """Tell whether ``stored_hash`` was made with other parameters, another scheme (legacy) or is malformed."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError, TypeError, AttributeError):  # AttributeError: not a string at all
            return True

    def verify_and_update(self, password: str, stored_hash: str) -> tuple[bool, str | None]:
        """Verify, and when the parameters changed return a fresh hash to store.

        Returns:
            ``(matches, new_hash)``; ``new_hash`` is ``None`` unless the password matched
            and the stored hash used outdated parameters.
        """
        if not self.verify(password, stored_hash):
            return False, None
        return True, (self.hash(password) if self.needs_rehash(stored_hash) else None)

    # ------------------------------------------------------------------ async

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="energy-auth-argon2")
        return self._executor

    async def hash_async(self, password: str) -> str:
        """Like :meth:`hash`, in the bounded executor."""
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self.hash, password)

    async def verify_async(self, password: str, stored_hash: str) -> bool:
        """Like :meth:`verify`, in the bounded executor."""
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self.verify, password, stored_hash)

    async def verify_and_update_async(self, password: str, stored_hash: str) -> tuple[bool, str | None]:
        """Like :meth:`verify_and_update`, in the bounded executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), self.verify_and_update, password, stored_hash)

    async def authenticate(self, password: str, stored_hash: str | None) -> str | None:
        """Check a login password off the event loop; the building block of a login route.

        An unknown user (``stored_hash=None``) costs the same as a wrong password, so
        response times do not reveal which user names exist.

        Returns:
            A new hash to store when the stored one used outdated parameters, else ``None``.

        Raises:
            InvalidCredentialsError: The password does not match (or the user is unknown).

        Example:
            >>> new_hash = await hasher.authenticate(form.password, user.password_hash)  # doctest: +SKIP
        """
        if stored_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash_async("energy-auth dummy password")
            await self.verify_async(password, self._dummy_hash)
            raise InvalidCredentialsError()
        matches, new_hash = await self.verify_and_update_async(password, stored_hash)
        if not matches:
            raise InvalidCredentialsError()
        return new_hash

    def close(self) -> None:
        """Shut the executor down (waiting for running hashes); async methods restart it."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        return f"PasswordHasher(argon2id, t={self.time_cost}, m={self.memory_cost} KiB, p={self.parallelism})"
