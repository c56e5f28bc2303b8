"""Device credentials: per-device secrets (argon2id at rest), optional X.509 client certificates.

``energy_auth.devices`` needs only the core dependencies. The Redis store lives in
:mod:`energy_auth.devices.redis` (extra ``redis``), the SQL store in
:mod:`energy_auth.devices.sql` (extra ``sql``)::

    from energy_auth.devices import DeviceCredentials, InMemoryDeviceCredentialStore

    credentials = DeviceCredentials(InMemoryDeviceCredentialStore(), roles=policy.device_roles)
    new = await credentials.provision("meter-17")  # new.secret is shown once
    await credentials.authenticate("meter-17", new.secret)  # -> DeviceCredential
    await credentials.rotate("meter-17")  # the old secret works for 24 h more
    await credentials.revoke("meter-17")  # nothing is accepted any more
"""

from energy_auth.devices._cache import VerifiedSecretCache
from energy_auth.devices._certs import DeviceCertificateAuthority, IssuedCertificate
from energy_auth.devices._errors import (
    CertificateAuthorityError,
    DeviceCredentialExistsError,
    DeviceCredentialNotFoundError,
    DeviceCredentialRevokedError,
    DeviceIdError,
)
from energy_auth.devices._events import CredentialEvent, CredentialListener
from energy_auth.devices._ids import MAX_DEVICE_ID_LENGTH, is_valid_device_id, validate_device_id
from energy_auth.devices._manager import DeviceCredentials, generate_device_secret
from energy_auth.devices._records import (
    CertificateRecord,
    DeviceCredential,
    DeviceCredentialInfo,
    DeviceSecret,
    NewDeviceCredential,
)
from energy_auth.devices._store import DeviceCredentialStore, InMemoryDeviceCredentialStore

__all__ = [
    "MAX_DEVICE_ID_LENGTH",
    "CertificateAuthorityError",
    "CertificateRecord",
    "CredentialEvent",
    "CredentialListener",
    "DeviceCertificateAuthority",
    "DeviceCredential",
    "DeviceCredentialExistsError",
    "DeviceCredentialInfo",
    "DeviceCredentialNotFoundError",
    "DeviceCredentialRevokedError",
    "DeviceCredentialStore",
    "DeviceCredentials",
    "DeviceIdError",
    "DeviceSecret",
    "InMemoryDeviceCredentialStore",
    "IssuedCertificate",
    "NewDeviceCredential",
    "VerifiedSecretCache",
    "generate_device_secret",
    "is_valid_device_id",
    "validate_device_id",
]
