"""Tests for DeviceCredentials: provisioning, verification cache, rotation, revocation, certificates."""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from energy_auth import DEFAULT_ACCESS_POLICY, InvalidCredentialsError, PasswordHasher
from energy_auth.devices import (
    CertificateAuthorityError,
    DeviceCertificateAuthority,
    DeviceCredentialExistsError,
    DeviceCredentialNotFoundError,
    DeviceCredentialRevokedError,
    DeviceCredentials,
    DeviceIdError,
    InMemoryDeviceCredentialStore,
    validate_device_id,
)
from energy_common.exceptions import ConfigurationError, ValidationError

from .conftest import Clock


@pytest.fixture
def credentials(cheap_hasher: PasswordHasher, clock: Clock) -> DeviceCredentials:
    """Credentials on the memory store, cheap argon2, the fake clock, the default policy's device roles."""
    return DeviceCredentials(
        InMemoryDeviceCredentialStore(), hasher=cheap_hasher, roles=DEFAULT_ACCESS_POLICY.device_roles, clock=clock
    )


def make_ca(*, ca: bool = True) -> tuple[str, str]:
    """A self-signed EC CA (certificate PEM, key PEM) for the tests."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Device CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


@pytest.mark.parametrize(
    "device_id",
    [
        "",
        "a/b",
        "meter+",
        "meter#",
        "a\x00b",
        "svc:x",
        " meter",
        "-meter",
        ".",
        "m" * 65,
        "mèter",
        "{device_id}",
        None,
        17,
    ],
)
def test_invalid_device_ids_are_refused(device_id: object) -> None:
    """Ids that would break topics, logs or the username scheme are a DeviceIdError."""
    with pytest.raises(DeviceIdError):
        validate_device_id(device_id)


@pytest.mark.parametrize("device_id", ["m", "meter-17", "sensor001", "a.b_c-d", "M" * 64])
def test_valid_device_ids(device_id: str) -> None:
    """Letters, digits, '.', '_' and '-' up to 64 characters are accepted."""
    assert validate_device_id(device_id) == device_id


async def test_provision_shows_the_secret_once_and_stores_only_argon2id(credentials: DeviceCredentials) -> None:
    """The secret is returned once, never in a repr; the store holds only an argon2id hash of it."""
    new = await credentials.provision("meter-17")
    assert new.username == "meter-17"
    assert len(new.secret) == 52
    assert new.secret not in repr(new)
    record = await credentials.store.get("meter-17")
    assert record is not None
    assert record.role == "meter"
    assert record.secrets[0].secret_hash.startswith("$argon2id$")
    assert new.secret not in repr(record)
    assert new.secret not in str(record.to_dict())
    listed = await credentials.list()
    assert [i.device_id for i in listed] == ["meter-17"]
    assert "argon2" not in repr(listed)
    assert new.secret not in repr(listed)


async def test_provision_refuses_duplicates_and_bad_roles(credentials: DeviceCredentials) -> None:
    """A second provisioning is a 409; a role outside the device roles is a 400."""
    await credentials.provision("m1")
    with pytest.raises(DeviceCredentialExistsError) as exc:
        await credentials.provision("m1")
    assert exc.value.status_code == 409
    with pytest.raises(ValidationError):
        await credentials.provision("m2", role="service")
    with pytest.raises(DeviceIdError):
        await credentials.provision("m/2")


async def test_authenticate_and_the_verified_cache(credentials: DeviceCredentials) -> None:
    """A right secret passes; a repeat is answered from the cache without a second argon2 run."""
    new = await credentials.provision("m1")
    assert (await credentials.authenticate("m1", new.secret)).device_id == "m1"
    assert credentials.hashes_verified == 1
    for _ in range(5):
        await credentials.authenticate("m1", new.secret)
    assert credentials.hashes_verified == 1
    assert credentials.cache.hits == 5
    # The cache keeps HMAC digests and stored hashes, never the plaintext secret.
    assert all(new.secret.encode() not in key for key in credentials.cache._entries)
    assert new.secret not in repr(list(credentials.cache._entries.values()))


@pytest.mark.parametrize(
    ("device_id", "secret"),
    [
        ("m1", "wrong"),
        ("m1", "0a1b2c3d." + "x" * 43),  # well-formed, unknown secret id
        ("ghost", "0a1b2c3d." + "x" * 43),
        ("m1", ""),
        ("m1", "a" * 10_000),
        ("", "x"),
        ("m" * 70_000, "x"),
        ("m1\udcff", "x"),
    ],
)
async def test_wrong_or_malformed_credentials_cost_no_hash(
    credentials: DeviceCredentials, device_id: str, secret: str
) -> None:
    """Unknown devices, secret ids and malformed input are refused without any argon2 run."""
    await credentials.provision("m1")
    with pytest.raises(InvalidCredentialsError):
        await credentials.authenticate(device_id, secret)
    assert credentials.hashes_verified == 0


async def test_wrong_secret_with_the_right_id_is_refused(credentials: DeviceCredentials) -> None:
    """A secret with the right id but wrong random part is checked by argon2 and refused."""
    new = await credentials.provision("m1")
    forged = new.secret[:9] + ("A" if new.secret[9] != "A" else "B") + new.secret[10:]
    with pytest.raises(InvalidCredentialsError):
        await credentials.authenticate("m1", forged)
    assert credentials.hashes_verified == 1


async def test_concurrent_identical_attempts_share_one_hash(credentials: DeviceCredentials) -> None:
    """Fifty simultaneous attempts with the same secret run argon2 once (single flight)."""
    new = await credentials.provision("m1")
    results = await asyncio.gather(*(credentials.authenticate("m1", new.secret) for _ in range(50)))
    assert {r.device_id for r in results} == {"m1"}
    assert credentials.hashes_verified == 1


async def test_rotation_overlap_window(credentials: DeviceCredentials, clock: Clock) -> None:
    """After a rotation the old secret works until the window ends — even from the cache — then never."""
    old = await credentials.provision("m1")
    await credentials.authenticate("m1", old.secret)  # cached
    new = await credentials.rotate("m1", overlap=timedelta(hours=1))
    assert new.secret != old.secret
    await credentials.authenticate("m1", new.secret)
    await credentials.authenticate("m1", old.secret)
    info = await credentials.get("m1")
    assert len(info.secrets) == 2
    assert info.secrets[1][2] == clock.now + 3600
    clock.advance(3601)
    with pytest.raises(InvalidCredentialsError):
        await credentials.authenticate("m1", old.secret)
    await credentials.authenticate("m1", new.secret)


async def test_rotation_keeps_at_most_the_newest_previous_secret(credentials: DeviceCredentials) -> None:
    """Two rotations inside a window leave the current and the one before it, not the first."""
    first = await credentials.provision("m1")
    second = await credentials.rotate("m1")
    third = await credentials.rotate("m1")
    await credentials.authenticate("m1", third.secret)
    await credentials.authenticate("m1", second.secret)
    with pytest.raises(InvalidCredentialsError):
        await credentials.authenticate("m1", first.secret)


async def test_rotation_without_overlap_ends_the_old_secret_now(credentials: DeviceCredentials) -> None:
    """overlap=0 refuses the previous secret at once, cached or not."""
    old = await credentials.provision("m1")
    await credentials.authenticate("m1", old.secret)
    await credentials.rotate("m1", overlap=timedelta(0))
    with pytest.raises(InvalidCredentialsError):
        await credentials.authenticate("m1", old.secret)


async def test_concurrent_rotations_both_land(credentials: DeviceCredentials) -> None:
    """Racing rotations retry on a version conflict; both land and the record stays consistent."""
    await credentials.provision("m1")
    a, b = await asyncio.gather(credentials.rotate("m1"), credentials.rotate("m1"))
    info = await credentials.get("m1")
    assert info.version == 3
    assert len(info.secrets) == 2
    ids = {s[0] for s in info.secrets}
    assert a.secret.split(".")[0] in ids
    assert b.secret.split(".")[0] in ids


async def test_revocation_is_immediate(credentials: DeviceCredentials) -> None:
    """A revoked device is refused at once, even with a cached secret; it cannot be rotated."""
    new = await credentials.provision("m1")
    await credentials.authenticate("m1", new.secret)
    info = await credentials.revoke("m1")
    assert info.revoked
    assert info.secrets == ()
    with pytest.raises(InvalidCredentialsError):
        await credentials.authenticate("m1", new.secret)
    with pytest.raises(DeviceCredentialRevokedError):
        await credentials.rotate("m1")
    await credentials.revoke("m1")  # twice is harmless
    assert await credentials.delete("m1") is True
    again = await credentials.provision("m1")
    await credentials.authenticate("m1", again.secret)


async def test_unknown_devices_are_not_found(credentials: DeviceCredentials) -> None:
    """Rotating, revoking or reading a device without a credential is a 404."""
    for call in (credentials.rotate("ghost"), credentials.revoke("ghost"), credentials.get("ghost")):
        with pytest.raises(DeviceCredentialNotFoundError) as exc:
            await call
        assert exc.value.status_code == 404


async def test_certificate_issued_with_a_generated_key(cheap_hasher: PasswordHasher) -> None:
    """A requested certificate is signed by the CA, CN = device id, clientAuth only, not a CA."""
    ca_pem, ca_key = make_ca()
    authority = DeviceCertificateAuthority(ca_pem, ca_key, validity=timedelta(days=30))
    credentials = DeviceCredentials(
        InMemoryDeviceCredentialStore(), hasher=cheap_hasher, certificate_authority=authority
    )
    new = await credentials.provision("m1", certificate=True)
    assert new.certificate_pem is not None
    assert new.private_key_pem is not None
    assert new.private_key_pem not in repr(new)
    cert = x509.load_pem_x509_certificate(new.certificate_pem.encode())
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "m1"
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    info = await credentials.get("m1")
    assert info.certificate is not None
    assert info.certificate.fingerprint == cert.fingerprint(hashes.SHA256()).hex()
    key = serialization.load_pem_private_key(new.private_key_pem.encode(), None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]


async def test_certificate_from_a_csr_ignores_its_subject(cheap_hasher: PasswordHasher) -> None:
    """With a CSR only its key is used: the CN is the device id whatever the CSR asked for."""
    authority = DeviceCertificateAuthority(*make_ca())
    credentials = DeviceCredentials(
        InMemoryDeviceCredentialStore(), hasher=cheap_hasher, certificate_authority=authority
    )
    device_key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
        .sign(device_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    new = await credentials.provision("m1", csr_pem=csr)
    assert new.private_key_pem is None
    assert new.certificate_pem is not None
    cert = x509.load_pem_x509_certificate(new.certificate_pem.encode())
    assert cert.subject.rfc4514_string() == "CN=m1"
    with pytest.raises(ValidationError):
        await credentials.rotate(
            "m1", csr_pem=b"-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n"
        )


def test_certificate_authority_checks_its_inputs() -> None:
    """A non-CA certificate, a key of another CA or unreadable PEM is a CertificateAuthorityError."""
    cert, key = make_ca(ca=False)
    with pytest.raises(CertificateAuthorityError):
        DeviceCertificateAuthority(cert, key)
    cert, _ = make_ca()
    _, other_key = make_ca()
    with pytest.raises(CertificateAuthorityError):
        DeviceCertificateAuthority(cert, other_key)
    with pytest.raises(CertificateAuthorityError):
        DeviceCertificateAuthority("not pem", "not pem")


async def test_certificate_without_a_ca_is_a_configuration_error(credentials: DeviceCredentials) -> None:
    """Asking for a certificate when no CA is configured says how to configure one."""
    with pytest.raises(ConfigurationError, match="certificate_authority"):
        await credentials.provision("m1", certificate=True)
    assert await credentials.store.get("m1") is None


def test_verified_cache_bounds_ttl_and_forget() -> None:
    """The cache evicts the least recently used, expires after its TTL and forgets per device."""
    from energy_auth.devices import VerifiedSecretCache

    now = [0.0]
    cache = VerifiedSecretCache(ttl=10, max_entries=2, clock=lambda: now[0])
    a, b, c = (cache.fingerprint(d, "s") for d in ("a", "b", "c"))
    assert a != cache.fingerprint("a", "t")
    assert len(a) == 32
    cache.remember(a, "a", "h")
    cache.remember(b, "b", "h")
    assert cache.matches(a, "a", "h")  # a is now the most recent
    cache.remember(c, "c", "h")  # evicts b
    assert not cache.matches(b, "b", "h")
    assert not cache.matches(a, "a", "other-hash")  # vouches only for the hash it matched
    cache.forget("a")
    assert not cache.matches(a, "a", "h")
    now[0] = 11.0
    assert not cache.matches(c, "c", "h")
    assert len(cache) == 0
    assert VerifiedSecretCache(ttl=0).fingerprint("a", "s") != VerifiedSecretCache(ttl=0).fingerprint("a", "s")
    with pytest.raises(ValueError, match="ttl"):
        VerifiedSecretCache(ttl=-1)


async def test_listeners_hear_every_change_with_the_secret_only_when_new(
    cheap_hasher: PasswordHasher, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Listeners get plain events after each stored change; a failing one is logged, not raised."""
    from energy_auth.devices import CredentialEvent

    events: list[CredentialEvent] = []

    async def record(event: CredentialEvent) -> None:
        events.append(event)

    async def broken(event: CredentialEvent) -> None:
        raise RuntimeError(f"broker down {event.secret}")

    credentials = DeviceCredentials(
        InMemoryDeviceCredentialStore(), hasher=cheap_hasher, clock=clock, listeners=[broken, record]
    )
    new = await credentials.provision("m1")
    rotated = await credentials.rotate("m1", overlap=timedelta(minutes=5))
    await credentials.revoke("m1")
    await credentials.delete("m1")
    assert [(e.kind, e.device_id, e.role) for e in events] == [
        ("provisioned", "m1", "meter"),
        ("rotated", "m1", "meter"),
        ("revoked", "m1", "meter"),
        ("deleted", "m1", None),
    ]
    assert [e.secret for e in events] == [new.secret, rotated.secret, None, None]
    assert events[1].previous_expires_at == clock.now + 300
    assert new.secret not in repr(events)
    assert credentials.listener_failures == 4
    assert "rotate the device to resync" in caplog.text
    assert new.secret not in caplog.text
