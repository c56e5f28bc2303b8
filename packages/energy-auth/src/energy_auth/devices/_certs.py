"""X.509 client certificates for devices (mTLS), signed by a CA the platform supplies."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from energy_common.exceptions import ValidationError

from energy_auth.devices._errors import CertificateAuthorityError
from energy_auth.devices._ids import validate_device_id
from energy_auth.devices._records import CertificateRecord

__all__ = ["DeviceCertificateAuthority", "IssuedCertificate"]

_CAKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
MAX_CSR_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A signed device certificate.

    Attributes:
        certificate_pem: The certificate, PEM.
        private_key_pem: Its private key (PKCS#8 PEM) when the CA generated the key pair;
            ``None`` when the device sent a CSR (its key never left it).
        record: Serial, SHA-256 fingerprint and expiry, as stored with the credential.
    """

    certificate_pem: str
    private_key_pem: str | None = field(repr=False)
    record: CertificateRecord


class DeviceCertificateAuthority:
    """Signs device client certificates: subject CN = device id, clientAuth only, not a CA.

    The broker is configured to trust this CA for client certificates (Mosquitto
    ``require_certificate true`` + ``cafile``, and ``use_identity_as_username true`` to take
    the CN as username; EMQX ``verify = verify_peer`` + ``peer_cert_as_username = cn``).

    Args:
        certificate_pem: The CA certificate (PEM); it must be a CA (basicConstraints).
        private_key_pem: The CA's private key (PEM, RSA >= 2048, EC or Ed25519).
        password: The key's passphrase, if encrypted.
        validity: Lifetime of issued certificates.
        clock: Returns the current Unix time.

    Raises:
        CertificateAuthorityError: The certificate is not a CA, the key does not match it,
            or either cannot be parsed.
    """

    def __init__(
        self,
        certificate_pem: str | bytes,
        private_key_pem: str | bytes,
        *,
        password: bytes | None = None,
        validity: timedelta = timedelta(days=365),
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            self.certificate = x509.load_pem_x509_certificate(_bytes(certificate_pem))
            key = serialization.load_pem_private_key(_bytes(private_key_pem), password)
        except (ValueError, TypeError) as exc:
            raise CertificateAuthorityError(
                "The CA certificate or key could not be read; pass PEM data (and the key's password)."
            ) from exc
        if not isinstance(key, _CAKey):
            raise CertificateAuthorityError("The CA key must be RSA, EC or Ed25519.")
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
            raise CertificateAuthorityError("The CA's RSA key is shorter than 2048 bits; use a stronger CA key.")
        try:
            constraints = self.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise CertificateAuthorityError("The CA certificate lacks basicConstraints CA:TRUE; use a CA certificate.")
        public = self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if (
            key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            != public
        ):
            raise CertificateAuthorityError("The CA key does not belong to the CA certificate.")
        if validity <= timedelta(0):
            raise CertificateAuthorityError("validity must be positive.")
        self._key: _CAKey = key
        self.validity = validity
        self._clock = clock

    def issue(self, device_id: str, *, csr_pem: str | bytes | None = None) -> IssuedCertificate:
        """Issue a client certificate for ``device_id``.

        Args:
            device_id: The device; it becomes the subject CN.
            csr_pem: A certificate signing request from the device (its key stays on the
                device). Only its public key is used: its subject and extensions are
                ignored. Without it an EC P-256 key pair is generated.

        Raises:
            DeviceIdError: The device id is invalid.
            ValidationError: The CSR is malformed, too large or its signature is wrong.
        """
        validate_device_id(device_id)
        private_pem: str | None = None
        public_key: CertificatePublicKeyTypes
        if csr_pem is None:
            device_key = ec.generate_private_key(ec.SECP256R1())
            public_key = device_key.public_key()
            private_pem = device_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode("ascii")
        else:
            public_key = _csr_public_key(csr_pem)
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        not_after = now + self.validity
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))  # tolerate a device clock slightly behind
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )
        algorithm = None if isinstance(self._key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        certificate = builder.sign(self._key, algorithm)
        record = CertificateRecord(
            serial=format(certificate.serial_number, "x"),
            fingerprint=certificate.fingerprint(hashes.SHA256()).hex(),
            not_after=not_after.timestamp(),
        )
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        return IssuedCertificate(pem, private_pem, record)

    def __repr__(self) -> str:
        return f"DeviceCertificateAuthority({self.certificate.subject.rfc4514_string()!r})"


def _bytes(data: str | bytes) -> bytes:
    return data.encode("ascii") if isinstance(data, str) else data


def _csr_public_key(csr_pem: str | bytes) -> CertificatePublicKeyTypes:
    raw = csr_pem.encode("utf-8", errors="replace") if isinstance(csr_pem, str) else csr_pem
    if len(raw) > MAX_CSR_BYTES:
        raise ValidationError(f"The CSR is larger than {MAX_CSR_BYTES} bytes.")
    try:
        csr = x509.load_pem_x509_csr(raw)
        valid = csr.is_signature_valid
        public_key = csr.public_key()
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ValidationError("The certificate signing request could not be read; send one PEM CSR.") from exc
    if not valid:
        raise ValidationError("The CSR's signature does not verify; generate it again with the device's key.")
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < 2048:
        raise ValidationError("The CSR's RSA key is shorter than 2048 bits.")
    return public_key
