"""The errors of device credentials, below the energy_common exception tree::

    ValidationError                       400  VALIDATION_ERROR
    └── DeviceIdError                     400  DEVICE_ID_INVALID
    ResourceNotFoundError                 404  RESOURCE_NOT_FOUND
    └── DeviceCredentialNotFoundError     404  DEVICE_CREDENTIAL_NOT_FOUND
    ConflictError                         409  CONFLICT
    ├── DeviceCredentialExistsError       409  DEVICE_CREDENTIAL_EXISTS
    └── DeviceCredentialRevokedError      409  DEVICE_CREDENTIAL_REVOKED
    ConfigurationError                    500  CONFIGURATION_ERROR
    └── CertificateAuthorityError         500  CERTIFICATE_AUTHORITY_INVALID

No message ever contains a secret, a hash or a private key.
"""

from __future__ import annotations

from energy_common.exceptions import ConfigurationError, ConflictError, ResourceNotFoundError, ValidationError

__all__ = [
    "CertificateAuthorityError",
    "DeviceCredentialExistsError",
    "DeviceCredentialNotFoundError",
    "DeviceCredentialRevokedError",
    "DeviceIdError",
]


class DeviceIdError(ValidationError):
    """A device id is empty, too long or uses characters outside ``A-Z a-z 0-9 . _ -``."""

    error_code = "DEVICE_ID_INVALID"
    default_message = "The device id is invalid."


class DeviceCredentialNotFoundError(ResourceNotFoundError):
    """No credential is provisioned for the device: provision it first."""

    error_code = "DEVICE_CREDENTIAL_NOT_FOUND"

    def __init__(self, device_id: str) -> None:
        super().__init__("Device credential", device_id)
        self.message = f"No credential is provisioned for device {device_id!r}; provision it first."


class DeviceCredentialExistsError(ConflictError):
    """The device already has a credential: rotate it, or delete it before provisioning again."""

    error_code = "DEVICE_CREDENTIAL_EXISTS"
    default_message = "The device already has a credential; rotate it, or delete it before provisioning again."


class CertificateAuthorityError(ConfigurationError):
    """The CA certificate or key given to sign device certificates is unusable."""

    error_code = "CERTIFICATE_AUTHORITY_INVALID"
    default_message = "The device certificate authority is not usable."


class DeviceCredentialRevokedError(ConflictError):
    """The credential was revoked: it cannot be rotated; delete it and provision the device again."""

    error_code = "DEVICE_CREDENTIAL_REVOKED"
    default_message = "The device's credential was revoked; delete it and provision the device again."
