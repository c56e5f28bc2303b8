"""Tests for AccessPolicy: the default rules, the plain-data export, and the HTTP permission side."""

from __future__ import annotations

import json
from typing import Any

import pytest
from energy_auth import DEFAULT_ACCESS_POLICY, AccessPolicy, PolicyError, Principal, RolePolicy, topic_allowed

# (role, action, topic, device_id, client_id, allowed): every rule of the default policy,
# each with the near misses an attacker would try. Reused by the broker endpoint tests.
DEFAULT_RULES: list[tuple[str, str, str, str | None, str, bool]] = [
    # meter: its own telemetry, status, replies; its own commands; nothing else
    ("meter", "publish", "devices/m1/telemetry", "m1", "m1", True),
    ("meter", "publish", "devices/m1/status", "m1", "m1", True),
    ("meter", "publish", "devices/m1/replies/3fa2c1d9", "m1", "m1", True),
    ("meter", "publish", "devices/m2/telemetry", "m1", "m1", False),
    ("meter", "publish", "devices/m2/status", "m1", "m1", False),
    ("meter", "publish", "devices/m2/replies/x", "m1", "m1", False),
    ("meter", "publish", "devices/m1/commands", "m1", "m1", False),
    ("meter", "publish", "devices/m1/replies", "m1", "m1", False),
    ("meter", "publish", "devices/m1/replies/a/b", "m1", "m1", False),
    ("meter", "publish", "devices/+/telemetry", "m1", "m1", False),
    ("meter", "publish", "devices/m1/telemetry/extra", "m1", "m1", False),
    ("meter", "publish", "devices/{device_id}/telemetry", "m1", "m1", False),
    ("meter", "publish", "ghost/m1/telemetry", "m1", "m1", False),
    ("meter", "subscribe", "devices/m1/commands", "m1", "m1", True),
    ("meter", "subscribe", "devices/m2/commands", "m1", "m1", False),
    ("meter", "subscribe", "devices/+/commands", "m1", "m1", False),
    ("meter", "subscribe", "devices/#", "m1", "m1", False),
    ("meter", "subscribe", "#", "m1", "m1", False),
    ("meter", "subscribe", "devices/m1/#", "m1", "m1", False),
    ("meter", "subscribe", "devices/+/replies/#", "m1", "m1", False),
    ("meter", "subscribe", "$share/g/devices/m1/commands", "m1", "m1", False),
    ("meter", "subscribe", "devices/m1/telemetry", "m1", "m1", False),
    ("meter", "read", "devices/m1/commands", "m1", "m1", True),
    ("meter", "read", "devices/m2/commands", "m1", "m1", False),
    # service: sends commands, reads all device traffic (also shared), publishes its status
    ("service", "publish", "devices/m1/commands", None, "ingest-1", True),
    ("service", "publish", "devices/m1/telemetry", None, "ingest-1", False),
    ("service", "publish", "devices/m1/replies/x", None, "ingest-1", False),
    ("service", "publish", "services/ingest-1/status", None, "ingest-1", True),
    ("service", "publish", "services/ingest-2/status", None, "ingest-1", False),
    ("service", "subscribe", "devices/+/telemetry", None, "ingest-1", True),
    ("service", "subscribe", "devices/m1/status", None, "ingest-1", True),
    ("service", "subscribe", "devices/+/replies/+", None, "ingest-1", True),
    ("service", "subscribe", "$share/ingest/devices/+/telemetry", None, "ingest-1", True),
    ("service", "subscribe", "$share/ingest/devices/+/status", None, "ingest-1", True),
    ("service", "subscribe", "$share/ingest/devices/+/replies/+", None, "ingest-1", True),
    ("service", "subscribe", "devices/#", None, "ingest-1", False),
    ("service", "subscribe", "devices/+/commands", None, "ingest-1", False),
    ("service", "subscribe", "$share/ingest/devices/#", None, "ingest-1", False),
    ("service", "read", "devices/m1/telemetry", None, "ingest-1", True),
    ("service", "read", "devices/m1/commands", None, "ingest-1", False),
    # user roles have no MQTT rights at all
    ("operator", "publish", "devices/m1/commands", None, "op", False),
    ("admin", "subscribe", "devices/#", None, "admin", False),
    # unknown role or action
    ("ghost", "publish", "devices/m1/telemetry", "m1", "m1", False),
    ("meter", "delete", "devices/m1/telemetry", "m1", "m1", False),
]


@pytest.mark.parametrize(("role", "action", "topic", "device_id", "client_id", "allowed"), DEFAULT_RULES)
def test_default_policy_rules(  # noqa: PLR0917 - one parameter per column of the rule table
    role: str, action: str, topic: str, device_id: str | None, client_id: str, allowed: bool
) -> None:
    """Each default rule holds, through the policy object and through the plain-data function alike."""
    assert DEFAULT_ACCESS_POLICY.allows(role, action, topic, device_id=device_id, client_id=client_id) is allowed
    data = json.loads(json.dumps(DEFAULT_ACCESS_POLICY.to_dict()))  # plain JSON, as another package gets it
    assert topic_allowed(data, role, client_id, action, topic, device_id=device_id) is allowed


@pytest.mark.parametrize("value", ["", "a/b", "+", "#", "$SYS", "x\x00"])
def test_placeholder_values_that_would_widen_a_pattern_grant_nothing(value: str) -> None:
    """A device id or client id that is not one safe literal level fills no placeholder."""
    assert not DEFAULT_ACCESS_POLICY.allows("meter", "publish", f"devices/{value}/telemetry", device_id=value)
    assert not DEFAULT_ACCESS_POLICY.allows("meter", "subscribe", "devices/+/commands", device_id=value)


def test_meter_without_device_id_is_denied() -> None:
    """A device role needs the device id; without it its patterns grant nothing."""
    assert not DEFAULT_ACCESS_POLICY.allows("meter", "publish", "devices/m1/telemetry", client_id="m1")


def test_to_dict_round_trip_and_shape() -> None:
    """The export is JSON-ready, has {root} expanded, and rebuilds an equal policy."""
    data = DEFAULT_ACCESS_POLICY.to_dict()
    assert data["version"] == 1
    assert data["placeholders"] == ["{device_id}", "{client_id}"]
    assert data["roles"]["meter"]["publish"] == [
        "devices/{device_id}/telemetry",
        "devices/{device_id}/status",
        "devices/{device_id}/replies/+",
    ]
    assert AccessPolicy.from_dict(json.loads(json.dumps(data))).to_dict() == data


def test_custom_root() -> None:
    """``{root}`` stands for the configured device topic root."""
    policy = AccessPolicy([RolePolicy("meter", "device", publish=("{root}/{device_id}/telemetry",))], root="site-a")
    assert policy.allows("meter", "publish", "site-a/m1/telemetry", device_id="m1")
    assert not policy.allows("meter", "publish", "devices/m1/telemetry", device_id="m1")


@pytest.mark.parametrize(
    ("roles", "fragment"),
    [
        ([RolePolicy("a", "device"), RolePolicy("a", "device")], "unique"),
        ([RolePolicy("a", "robot")], "kind"),  # type: ignore[arg-type]
        ([RolePolicy("a", "device", publish=("devices/{id}/x",))], "placeholder"),
        ([RolePolicy("a", "device", publish=("devices/x{device_id}/x",))], "placeholder"),
        ([RolePolicy("a", "device", publish=("devices/#/x",))], "not a valid"),
        ([RolePolicy("a", "device", publish=("$share/+/x",))], "not a valid"),
        ([RolePolicy("a", "device", subscribe=("a/b+",))], "not a valid"),
        ([RolePolicy("a", "user", permissions=("devices::read",))], "permission"),
        ([RolePolicy("a", "user", includes=("b",))], "includes"),
        ([RolePolicy("a", "user", includes=("b",)), RolePolicy("b", "device")], "includes"),
        ([RolePolicy("a", "user", includes=("b",)), RolePolicy("b", "user", includes=("a",))], "cycle"),
    ],
)
def test_invalid_policies_are_refused(roles: list[RolePolicy], fragment: str) -> None:
    """A malformed policy fails when it is built, with a PolicyError saying what is wrong."""
    with pytest.raises(PolicyError, match=fragment):
        AccessPolicy(roles)


@pytest.mark.parametrize("data", [{"version": 2, "roles": {}}, {"roles": []}, {"roles": {"a": {}}}, []])
def test_from_dict_refuses_foreign_data(data: Any) -> None:
    """Data that is not a version-1 policy is refused with a PolicyError."""
    with pytest.raises(PolicyError):
        AccessPolicy.from_dict(data)


def test_http_permissions_follow_the_roles() -> None:
    """operator ⊇ viewer; the brief's operator permissions; unknown roles grant nothing."""
    assert DEFAULT_ACCESS_POLICY.permissions_for(["operator"]) == {"devices:read", "devices:write", "commands:send"}
    assert DEFAULT_ACCESS_POLICY.permissions_for(["viewer"]) == {"devices:read"}
    assert DEFAULT_ACCESS_POLICY.has_permission(["admin"], "devices:config:write")
    assert not DEFAULT_ACCESS_POLICY.has_permission(["viewer"], "commands:send")
    assert DEFAULT_ACCESS_POLICY.permissions_for(["ghost"]) == frozenset()
    assert DEFAULT_ACCESS_POLICY.hierarchy.expand(["admin"]) == {"admin", "operator", "viewer"}


def test_grant_adds_policy_permissions_to_a_principal() -> None:
    """grant() returns the principal with its roles' permissions added (and keeps its own)."""
    principal = Principal("u1", roles=frozenset({"operator"}), permissions=frozenset({"reports:read"}))
    granted = DEFAULT_ACCESS_POLICY.grant(principal)
    assert granted.has_permission("commands:send")
    assert granted.has_permission("reports:read")
    assert DEFAULT_ACCESS_POLICY.grant(Principal("u2")) == Principal("u2")


def test_topics_for_fills_placeholders() -> None:
    """topics_for gives a client's concrete patterns, e.g. for a broker's per-client ACL."""
    topics = DEFAULT_ACCESS_POLICY.topics_for("meter", device_id="m1")
    assert topics == {
        "publish": ["devices/m1/telemetry", "devices/m1/status", "devices/m1/replies/+"],
        "subscribe": ["devices/m1/commands"],
    }
    assert DEFAULT_ACCESS_POLICY.topics_for("meter") == {"publish": [], "subscribe": []}
    with pytest.raises(PolicyError):
        DEFAULT_ACCESS_POLICY.topics_for("ghost")


@pytest.mark.parametrize("data", [{}, {"roles": None}, {"roles": {"meter": "x"}}, None])
def test_topic_allowed_on_garbage_data_denies(data: Any) -> None:
    """topic_allowed never raises: data that is no policy denies everything."""
    assert topic_allowed(data, "meter", "m1", "publish", "devices/m1/telemetry", device_id="m1") is False


async def test_policy_feeds_require_permission() -> None:
    """With install_auth(policy=...), a token holding only a role passes the guards of that role."""
    pytest.importorskip("fastapi")
    from energy_auth import TokenManager
    from energy_auth.fastapi import install_auth, require_permission, require_role
    from energy_common.middleware import install_exception_handlers
    from fastapi import Depends, FastAPI

    from .test_auth_broker import call

    tokens = TokenManager("Q9x7Vb2mN4pL6sT8wY1zR3eU5iO0aS2dQ9x7Vb2mN4pL6s")
    app = FastAPI()
    install_exception_handlers(app)
    install_auth(app, tokens, policy=DEFAULT_ACCESS_POLICY)

    @app.post("/commands", dependencies=[Depends(require_permission("commands:send"))])
    async def send() -> dict[str, bool]:
        return {"sent": True}

    @app.get("/viewers", dependencies=[Depends(require_role("viewer"))])
    async def viewers() -> dict[str, bool]:
        return {"ok": True}

    def bearer(roles: list[str]) -> list[tuple[bytes, bytes]]:
        token = tokens.create_access_token({"sub": "u1", "roles": roles})
        return [(b"authorization", f"Bearer {token}".encode())]

    assert (await call(app, "/commands", headers=bearer(["operator"]))).status == 200
    denied = await call(app, "/commands", headers=bearer(["viewer"]))
    assert denied.status == 403
    assert denied.json()["error"]["details"]["required"] == ["commands:send"]
    assert (await call(app, "/viewers", method="GET", headers=bearer(["admin"]))).status == 200  # admin ⊇ viewer


def test_subpackage_imports_stay_light() -> None:
    """energy_auth.devices and energy_auth.broker import no web framework, Redis or database library."""
    import subprocess
    import sys

    code = (
        "import sys, energy_auth.devices, energy_auth.broker\n"
        "heavy = {'fastapi', 'starlette', 'redis', 'httpx', 'sqlalchemy', 'asyncpg'}\n"
        "print(sorted(heavy & {n.split('.')[0] for n in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_subpackage_all_is_pinned() -> None:
    """The public names of the devices and broker subpackages are exactly these, sorted."""
    import energy_auth.broker
    import energy_auth.devices

    assert energy_auth.devices.__all__ == [
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
    assert energy_auth.broker.__all__ == [
        "GO_AUTH_ACCESS",
        "MAX_USERNAME_LENGTH",
        "SERVICE_PREFIX",
        "AuthnDecision",
        "BrokerAuthenticator",
        "BrokerIdentity",
        "BrokerTokenVerifier",
        "RateLimiter",
        "client_id_is_device_id",
        "issue_service_token",
        "parse_fields",
        "parse_username",
        "service_username",
    ]
    for module in (energy_auth.devices, energy_auth.broker):
        assert all(hasattr(module, name) for name in module.__all__)


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("DeviceIdError", 400, "DEVICE_ID_INVALID"),
        ("DeviceCredentialNotFoundError", 404, "DEVICE_CREDENTIAL_NOT_FOUND"),
        ("DeviceCredentialExistsError", 409, "DEVICE_CREDENTIAL_EXISTS"),
        ("DeviceCredentialRevokedError", 409, "DEVICE_CREDENTIAL_REVOKED"),
        ("CertificateAuthorityError", 500, "CERTIFICATE_AUTHORITY_INVALID"),
    ],
)
def test_device_error_codes_are_stable(name: str, status: int, code: str) -> None:
    """Each device error has its documented status and stable error_code."""
    import energy_auth.devices

    cls = getattr(energy_auth.devices, name)
    assert (cls.status_code, cls.error_code) == (status, code)
