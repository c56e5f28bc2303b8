"""What is stored for a device (hashes only) and what may be shown (no hashes at all)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CertificateRecord", "DeviceCredential", "DeviceCredentialInfo", "DeviceSecret", "NewDeviceCredential"]


@dataclass(frozen=True, slots=True)
class DeviceSecret:
    """One accepted secret of a device, as stored: its id and its argon2id hash.

    Attributes:
        secret_id: Public id of the secret (the part before the ``.`` of the secret).
        secret_hash: argon2id PHC string of the whole secret (never shown).
        created_at: Unix time it was minted.
        expires_at: Unix time it stops being accepted (set when a newer secret replaced
            it); ``None`` while it is the current secret.
    """

    secret_id: str
    secret_hash: str = field(repr=False)
    created_at: float
    expires_at: float | None = None

    def valid_at(self, now: float) -> bool:
        """Tell whether the secret is accepted at Unix time ``now``."""
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    """The public facts of a device's client certificate (the certificate itself is public too).

    Attributes:
        serial: Serial number, hex.
        fingerprint: SHA-256 of the DER encoding, hex.
        not_after: Unix time the certificate expires.
    """

    serial: str
    fingerprint: str
    not_after: float


@dataclass(frozen=True, slots=True)
class DeviceCredential:
    """The stored credential of one device: identity, role, hashed secrets, certificate.

    Attributes:
        device_id: The device id, also its MQTT username.
        role: The policy role the device holds (``"meter"`` by default).
        secrets: Accepted secrets, newest first (two during a rotation's overlap window).
        created_at: Unix time it was provisioned.
        updated_at: Unix time of the last change.
        version: Grows with every change; stores replace a record only at the version
            they read (optimistic concurrency), and caches compare it.
        revoked_at: Unix time it was revoked; a revoked credential accepts nothing.
        certificate: The client certificate issued with it, if any.
    """

    device_id: str
    role: str
    secrets: tuple[DeviceSecret, ...]
    created_at: float
    updated_at: float
    version: int = 1
    revoked_at: float | None = None
    certificate: CertificateRecord | None = None

    @property
    def revoked(self) -> bool:
        """Whether the credential was revoked."""
        return self.revoked_at is not None

    def secret(self, secret_id: str, now: float) -> DeviceSecret | None:
        """Return the secret with ``secret_id`` if it is accepted at ``now`` (never when revoked)."""
        if self.revoked:
            return None
        for candidate in self.secrets:
            if candidate.secret_id == secret_id and candidate.valid_at(now):
                return candidate
        return None

    def info(self) -> DeviceCredentialInfo:
        """Return the listable view: everything but the hashes."""
        return DeviceCredentialInfo(
            device_id=self.device_id,
            role=self.role,
            created_at=self.created_at,
            updated_at=self.updated_at,
            version=self.version,
            revoked_at=self.revoked_at,
            secrets=tuple((s.secret_id, s.created_at, s.expires_at) for s in self.secrets),
            certificate=self.certificate,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form the Redis and SQL stores keep (hashes included)."""
        return {
            "device_id": self.device_id,
            "role": self.role,
            "secrets": [
                {"id": s.secret_id, "hash": s.secret_hash, "created_at": s.created_at, "expires_at": s.expires_at}
                for s in self.secrets
            ],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
            "revoked_at": self.revoked_at,
            "certificate": None
            if self.certificate is None
            else {
                "serial": self.certificate.serial,
                "fingerprint": self.certificate.fingerprint,
                "not_after": self.certificate.not_after,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceCredential:
        """Rebuild a credential from :meth:`to_dict` output.

        Raises:
            KeyError, TypeError, ValueError: The data is not a stored credential (stores
                translate these into their own errors).
        """
        cert = data.get("certificate")
        return cls(
            device_id=str(data["device_id"]),
            role=str(data["role"]),
            secrets=tuple(
                DeviceSecret(
                    str(s["id"]),
                    str(s["hash"]),
                    float(s["created_at"]),
                    None if s.get("expires_at") is None else float(s["expires_at"]),
                )
                for s in data["secrets"]
            ),
            created_at=float(data["created_at"]),
            updated_at=float(data["updated_at"]),
            version=int(data["version"]),
            revoked_at=None if data.get("revoked_at") is None else float(data["revoked_at"]),
            certificate=None
            if cert is None
            else CertificateRecord(str(cert["serial"]), str(cert["fingerprint"]), float(cert["not_after"])),
        )


@dataclass(frozen=True, slots=True)
class DeviceCredentialInfo:
    """What listing and lookups show of a credential: no secret and no hash.

    Attributes:
        device_id: The device id.
        role: Its policy role.
        created_at: Unix time it was provisioned.
        updated_at: Unix time of the last change.
        version: Change counter.
        revoked_at: Unix time it was revoked, or ``None``.
        secrets: ``(secret_id, created_at, expires_at)`` of each accepted secret, newest first.
        certificate: The client certificate's serial, fingerprint and expiry, if any.
    """

    device_id: str
    role: str
    created_at: float
    updated_at: float
    version: int
    revoked_at: float | None
    secrets: tuple[tuple[str, float, float | None], ...]
    certificate: CertificateRecord | None

    @property
    def revoked(self) -> bool:
        """Whether the credential was revoked."""
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class NewDeviceCredential:
    """A freshly minted credential: give ``secret`` (and the key, if generated) to the device once.

    Attributes:
        device_id: The device id, which is also its MQTT username.
        secret: The MQTT password; only its hash is stored, it cannot be shown again.
        info: The stored credential's listable view.
        certificate_pem: The signed client certificate (PEM), when one was requested.
        private_key_pem: The certificate's private key (PEM), when energy-auth generated
            it (not when the device sent a CSR); it is not stored either.
    """

    device_id: str
    secret: str = field(repr=False)
    info: DeviceCredentialInfo
    certificate_pem: str | None = None
    private_key_pem: str | None = field(default=None, repr=False)

    @property
    def username(self) -> str:
        """The MQTT username: the device id."""
        return self.device_id
