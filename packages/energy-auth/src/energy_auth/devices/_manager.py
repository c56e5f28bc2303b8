"""``DeviceCredentials``: provision, rotate, revoke, list and verify device credentials."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterable
from datetime import timedelta

from energy_common.exceptions import ConfigurationError, ConflictError, ValidationError

from energy_auth._errors import InvalidCredentialsError
from energy_auth._passwords import PasswordHasher
from energy_auth.devices._cache import VerifiedSecretCache
from energy_auth.devices._certs import DeviceCertificateAuthority, IssuedCertificate
from energy_auth.devices._errors import (
    DeviceCredentialExistsError,
    DeviceCredentialNotFoundError,
    DeviceCredentialRevokedError,
)
from energy_auth.devices._events import CredentialEvent, CredentialListener
from energy_auth.devices._ids import is_valid_device_id, validate_device_id
from energy_auth.devices._records import DeviceCredential, DeviceCredentialInfo, DeviceSecret, NewDeviceCredential
from energy_auth.devices._store import DeviceCredentialStore

__all__ = ["MAX_SECRET_LENGTH", "DeviceCredentials", "generate_device_secret"]

logger = logging.getLogger("energy_auth.devices")

MAX_SECRET_LENGTH = 256
_SECRET = re.compile(r"([0-9a-f]{8})\.[A-Za-z0-9_-]{43}")
_RETRIES = 5


def generate_device_secret() -> tuple[str, str]:
    """Return ``(secret_id, secret)``: 256 random bits, prefixed by a public 32-bit id.

    The secret looks like ``3fa2c1d9.<43 base64url characters>``; the id picks the stored
    hash to check, so a rotation's overlap window never costs two argon2 verifications.
    """
    secret_id = secrets.token_hex(4)
    return secret_id, f"{secret_id}.{secrets.token_urlsafe(32)}"


class DeviceCredentials:
    """Device credentials on a :class:`DeviceCredentialStore`: secrets stored only as argon2id.

    Args:
        store: Where credentials live (memory, Redis or SQL).
        hasher: Hashes secrets; its executor runs every argon2 call off the event loop.
        certificate_authority: Signs client certificates when one is requested.
        roles: Roles a device may be given (e.g. ``policy.device_roles``); ``None``
            accepts any role name.
        default_role: The role of a device provisioned without one.
        overlap: How long the previous secret stays valid after a rotation.
        cache_ttl: Seconds a verified secret is trusted without argon2 (0 disables).
        cache_size: Entries of the verified-secret cache.
        max_concurrent_hashes: argon2 verifications running at once (the rest wait,
            without holding a thread).
        listeners: ``async (CredentialEvent) -> None`` callables told of every change
            after it is stored (a broker sync); a failing listener is logged, never
            raised, and a device whose provisioning or rotation it missed must be
            rotated again to resync (its secret is not kept).
        clock: Returns the current Unix time.

    Example:
        >>> credentials = DeviceCredentials(InMemoryDeviceCredentialStore())  # doctest: +SKIP
        >>> new = await credentials.provision("meter-17")  # doctest: +SKIP
        >>> send_to_device(new.username, new.secret)  # shown once, only its hash is stored  # doctest: +SKIP
        >>> await credentials.authenticate("meter-17", new.secret)  # doctest: +SKIP
    """

    def __init__(
        self,
        store: DeviceCredentialStore,
        *,
        hasher: PasswordHasher | None = None,
        certificate_authority: DeviceCertificateAuthority | None = None,
        roles: Collection[str] | None = None,
        default_role: str = "meter",
        overlap: timedelta = timedelta(hours=24),
        cache_ttl: float = 300.0,
        cache_size: int = 100_000,
        max_concurrent_hashes: int | None = None,
        listeners: Iterable[CredentialListener] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if roles is not None and default_role not in roles:
            raise ConfigurationError(f"The default device role {default_role!r} is not among the allowed roles.")
        if overlap < timedelta(0):
            raise ConfigurationError("overlap must not be negative.")
        self.store = store
        self.hasher = hasher or PasswordHasher()
        self.certificate_authority = certificate_authority
        self.roles = None if roles is None else frozenset(roles)
        self.default_role = default_role
        self.overlap = overlap
        self.cache = VerifiedSecretCache(ttl=cache_ttl, max_entries=cache_size)
        self._hashing = asyncio.Semaphore(max_concurrent_hashes or self.hasher.max_workers)
        self._inflight: dict[bytes, asyncio.Future[bool]] = {}
        self.listeners: list[CredentialListener] = list(listeners)
        self._clock = clock
        self.hashes_verified = 0
        self.listener_failures = 0

    # ------------------------------------------------------------------ lifecycle

    async def provision(
        self, device_id: str, *, role: str | None = None, certificate: bool = False, csr_pem: str | bytes | None = None
    ) -> NewDeviceCredential:
        """Mint a credential for a new device; the secret (and generated key) is returned once.

        Args:
            device_id: The device id (also the MQTT username).
            role: Its policy role; ``default_role`` when omitted.
            certificate: Also issue an X.509 client certificate (needs a CA).
            csr_pem: The device's CSR for that certificate (implies ``certificate``).

        Raises:
            DeviceIdError: The device id is invalid.
            ValidationError: The role is not allowed, or the CSR is invalid.
            ConfigurationError: A certificate was asked for but no CA is configured.
            DeviceCredentialExistsError: The device already has a credential.
        """
        validate_device_id(device_id)
        role = self._check_role(role)
        issued = self._issue(device_id, certificate or csr_pem is not None, csr_pem)
        secret_id, secret = generate_device_secret()
        now = self._clock()
        record = DeviceCredential(
            device_id,
            role,
            (DeviceSecret(secret_id, await self.hasher.hash_async(secret), now),),
            now,
            now,
            certificate=None if issued is None else issued.record,
        )
        if not await self.store.create(record):
            raise DeviceCredentialExistsError(
                f"Device {device_id!r} already has a credential; rotate it, or delete it before provisioning again.",
                {"device_id": device_id},
            )
        logger.info("Provisioned a credential for device %s (role %s).", device_id, role)
        await self._tell(CredentialEvent("provisioned", device_id, role, secret, None, _fingerprint(record)))
        return _new(record, secret, issued)

    async def rotate(
        self,
        device_id: str,
        *,
        overlap: timedelta | None = None,
        certificate: bool = False,
        csr_pem: str | bytes | None = None,
    ) -> NewDeviceCredential:
        """Mint a new secret; the previous one stays valid for ``overlap``, older ones end now.

        Args:
            device_id: The device.
            overlap: Overlap window for the previous secret (default: the manager's);
                ``timedelta(0)`` ends it at once.
            certificate: Also issue a new client certificate.
            csr_pem: The device's CSR for it (implies ``certificate``).

        Raises:
            DeviceCredentialNotFoundError: The device has no credential.
            DeviceCredentialRevokedError: It was revoked.
            ConflictError: Other replicas kept changing it (retry).
        """
        window = self.overlap if overlap is None else overlap
        if window < timedelta(0):
            raise ValidationError("overlap must not be negative.")
        issued = self._issue(validate_device_id(device_id), certificate or csr_pem is not None, csr_pem)
        secret_id, secret = generate_device_secret()
        secret_hash = await self.hasher.hash_async(secret)

        def change(current: DeviceCredential, now: float) -> DeviceCredential:
            if current.revoked:
                raise DeviceCredentialRevokedError(details={"device_id": device_id})
            ends = now + window.total_seconds()
            previous = [s for s in current.secrets if s.valid_at(now)][:1]  # the newest one only
            kept = tuple(
                dataclasses.replace(s, expires_at=min(ends, s.expires_at or ends)) for s in previous if ends > now
            )
            return dataclasses.replace(
                current,
                secrets=(DeviceSecret(secret_id, secret_hash, now), *kept),
                certificate=current.certificate if issued is None else issued.record,
            )

        record = await self._update(device_id, change)
        logger.info("Rotated the credential of device %s (overlap %ss).", device_id, int(window.total_seconds()))
        previous = record.secrets[1].expires_at if len(record.secrets) > 1 else None
        await self._tell(CredentialEvent("rotated", device_id, record.role, secret, previous, _fingerprint(record)))
        return _new(record, secret, issued)

    async def revoke(self, device_id: str) -> DeviceCredentialInfo:
        """Revoke the credential at once: every secret and the certificate stop being accepted.

        The record is kept (revoked) so the device's certificate, which a broker may still
        trust by its CA, is refused by name. Revoking twice is harmless.

        Raises:
            DeviceCredentialNotFoundError: The device has no credential.
        """

        def change(current: DeviceCredential, now: float) -> DeviceCredential:
            return dataclasses.replace(current, secrets=(), revoked_at=current.revoked_at or now)

        record = await self._update(validate_device_id(device_id), change)
        logger.info("Revoked the credential of device %s.", device_id)
        await self._tell(CredentialEvent("revoked", device_id, record.role, None, None, _fingerprint(record)))
        return record.info()

    async def delete(self, device_id: str) -> bool:
        """Remove the credential entirely (the device may then be provisioned again)."""
        self.cache.forget(device_id)
        deleted = await self.store.delete(validate_device_id(device_id))
        if deleted:
            await self._tell(CredentialEvent("deleted", device_id, None))
        return deleted

    async def get(self, device_id: str) -> DeviceCredentialInfo:
        """Return the listable view of one credential.

        Raises:
            DeviceCredentialNotFoundError: The device has no credential.
        """
        record = await self.store.get(validate_device_id(device_id))
        if record is None:
            raise DeviceCredentialNotFoundError(device_id)
        return record.info()

    async def list(self, *, after: str | None = None, limit: int = 100) -> list[DeviceCredentialInfo]:
        """Return up to ``limit`` credentials ordered by device id — never a secret or hash."""
        return await self.store.list(after=after, limit=limit)

    # ------------------------------------------------------------------ verification

    async def authenticate(self, device_id: str, secret: str) -> DeviceCredential:
        """Check a device's secret; argon2 runs off the event loop and only on a cache miss.

        An unknown or revoked device, a malformed secret or an unknown secret id is refused
        without hashing: device ids are not secret (they name topics), and spending a hash
        on them would let a flood of made-up usernames occupy the hashing threads.

        Raises:
            InvalidCredentialsError: The device or secret is wrong (one message for all).
        """
        match = _SECRET.fullmatch(secret) if isinstance(secret, str) and len(secret) <= MAX_SECRET_LENGTH else None
        record = await self.store.get(device_id) if match is not None and is_valid_device_id(device_id) else None
        stored = None if record is None or match is None else record.secret(match.group(1), self._clock())
        if record is None or stored is None:
            raise InvalidCredentialsError("The device id or secret is incorrect.")
        fingerprint = self.cache.fingerprint(device_id, secret)
        if self.cache.matches(fingerprint, device_id, stored.secret_hash):
            return record
        if not await self._verify_once(fingerprint, secret, stored.secret_hash):
            raise InvalidCredentialsError("The device id or secret is incorrect.")
        self.cache.remember(fingerprint, device_id, stored.secret_hash)
        return record

    async def _verify_once(self, fingerprint: bytes, secret: str, secret_hash: str) -> bool:
        # Single flight: a device retrying while its first attempt is being hashed awaits
        # that same task instead of queueing a second argon2 run. The task belongs to no
        # request, so a requester that gives up (cancelled) does not cancel it for others.
        task = self._inflight.get(fingerprint)
        if task is None:
            task = asyncio.ensure_future(self._verify(secret, secret_hash))
            self._inflight[fingerprint] = task
            task.add_done_callback(lambda _: self._inflight.pop(fingerprint, None))
        return await asyncio.shield(task)

    async def _verify(self, secret: str, secret_hash: str) -> bool:
        async with self._hashing:
            result = await self.hasher.verify_async(secret, secret_hash)
        self.hashes_verified += 1
        return result

    # ------------------------------------------------------------------ helpers

    async def _tell(self, event: CredentialEvent) -> None:
        for listener in self.listeners:
            try:
                await listener(event)
            except Exception as exc:  # noqa: BLE001 - a sync failure must not undo a stored change
                self.listener_failures += 1
                logger.error(
                    "A credential listener failed on %s of device %s (%s); rotate the device to resync it.",
                    event.kind,
                    event.device_id,
                    type(exc).__name__,
                )

    def _check_role(self, role: str | None) -> str:
        role = self.default_role if role is None else role
        if not isinstance(role, str) or not role or (self.roles is not None and role not in self.roles):
            allowed = sorted(self.roles) if self.roles is not None else []
            raise ValidationError(f"Role {role!r} is not a device role; use one of {allowed}.", {"allowed": allowed})
        return role

    def _issue(self, device_id: str, wanted: bool, csr_pem: str | bytes | None) -> IssuedCertificate | None:
        if not wanted:
            return None
        if self.certificate_authority is None:
            raise ConfigurationError(
                "A device certificate was requested but no CA is configured: pass "
                "certificate_authority=DeviceCertificateAuthority(ca_pem, ca_key_pem)."
            )
        return self.certificate_authority.issue(device_id, csr_pem=csr_pem)

    async def _update(
        self, device_id: str, change: Callable[[DeviceCredential, float], DeviceCredential]
    ) -> DeviceCredential:
        for _ in range(_RETRIES):
            current = await self.store.get(device_id)
            if current is None:
                raise DeviceCredentialNotFoundError(device_id)
            now = self._clock()
            updated = dataclasses.replace(change(current, now), updated_at=now, version=current.version + 1)
            if await self.store.replace(updated, current.version):
                self.cache.forget(device_id)
                return updated
        raise ConflictError(
            f"The credential of device {device_id!r} kept changing while it was updated; retry.",
            {"device_id": device_id},
        )

    def __repr__(self) -> str:
        return f"DeviceCredentials(store={self.store!r}, hasher={self.hasher!r})"


def _fingerprint(record: DeviceCredential) -> str | None:
    return None if record.certificate is None else record.certificate.fingerprint


def _new(record: DeviceCredential, secret: str, issued: IssuedCertificate | None) -> NewDeviceCredential:
    return NewDeviceCredential(
        record.device_id,
        secret,
        record.info(),
        None if issued is None else issued.certificate_pem,
        None if issued is None else issued.private_key_pem,
    )
