"""Mosquitto dynamic security driven by the policy: per-device ACLs, revocation, rotation, hostile logins.

Every broker test runs a private Mosquitto 2 with ``mosquitto_dynamic_security.so`` on a
free loopback port, bootstrapped with :func:`bootstrap_config` (one admin client), and
drives it only through ``$CONTROL/dynamic-security/v1``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from energy_messaging import MQTTManager, MQTTMessage
from energy_messaging.dynsec import (
    DynamicSecurityClient,
    DynamicSecurityError,
    DynamicSecuritySync,
    acl_changes,
    bootstrap_config,
    fill_pattern,
    role_acls,
)
from energy_messaging.errors import MessagingConnectionError, MessagingError, PublishError

pytestmark = pytest.mark.mqtt

WaitUntil = Callable[..., Awaitable[None]]

PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")

#: The shape of energy-auth's ``DEFAULT_ACCESS_POLICY.to_dict()`` (this package never imports energy_auth;
#: tests/integration checks the real one).
POLICY: dict[str, Any] = {
    "version": 1,
    "root": "devices",
    "placeholders": ["{device_id}", "{client_id}"],
    "roles": {
        "meter": {
            "kind": "device",
            "publish": ["devices/{device_id}/telemetry", "devices/{device_id}/status", "devices/{device_id}/replies/+"],
            "subscribe": ["devices/{device_id}/commands"],
            "permissions": [],
            "includes": [],
        },
        "service": {
            "kind": "service",
            "publish": ["devices/+/commands", "services/{client_id}/status"],
            "subscribe": ["devices/+/telemetry", "devices/+/status", "$share/+/devices/+/telemetry"],
            "permissions": ["devices:read"],
            "includes": [],
        },
    },
}


# --------------------------------------------------------------------------- pure parts


def test_role_acls_fill_the_device_id_and_add_receive_rights() -> None:
    """A meter's ACLs are its own topics; subscriptions also grant delivery on the unshared topic."""
    acls = {(a["acltype"], a["topic"]) for a in role_acls(POLICY["roles"]["meter"], device_id="m1", client_id="m1")}
    assert acls == {
        ("publishClientSend", "devices/m1/telemetry"),
        ("publishClientSend", "devices/m1/status"),
        ("publishClientSend", "devices/m1/replies/+"),
        ("subscribePattern", "devices/m1/commands"),
        ("publishClientReceive", "devices/m1/commands"),
    }
    service = {(a["acltype"], a["topic"]) for a in role_acls(POLICY["roles"]["service"], device_id=None, client_id="s")}
    assert ("subscribePattern", "$share/+/devices/+/telemetry") in service
    assert ("publishClientReceive", "devices/+/telemetry") in service
    assert ("publishClientSend", "services/s/status") in service


@pytest.mark.parametrize("value", ["", "a/b", "+", "#", "$SYS", "a\x00b", None])
def test_fill_pattern_refuses_unsafe_values(value: str | None) -> None:
    """A placeholder value that is empty, holds a separator, wildcard or NUL, or starts with $ fills nothing."""
    assert fill_pattern("devices/{device_id}/telemetry", device_id=value, client_id=None) is None
    assert role_acls(POLICY["roles"]["meter"], device_id=value, client_id=value) == []


def test_acl_changes_is_a_diff() -> None:
    """Equal ACL sets give no change; the diff adds what is missing and removes what is extra."""
    a = {"acltype": "subscribePattern", "topic": "a", "priority": 0, "allow": True}
    b = {"acltype": "publishClientSend", "topic": "b", "priority": 0, "allow": True}
    assert acl_changes([a, b], [b, a]) == ([], [])
    assert acl_changes([a], [b]) == ([b], [a])


def test_bootstrap_config_refuses_weak_admin_credentials() -> None:
    """An empty admin name or a short password is refused before any file is written."""
    with pytest.raises(ValueError, match="username"):
        bootstrap_config("", "x" * 20)
    with pytest.raises(ValueError, match="16 characters"):
        bootstrap_config("admin", "short")
    config = bootstrap_config("admin", "x" * 20)
    assert "x" * 20 not in json.dumps(config)


def test_sync_refuses_policy_data_without_roles() -> None:
    """Policy data that is not a policy is a typed error, not an AttributeError later."""
    with pytest.raises(DynamicSecurityError):
        DynamicSecuritySync(DynamicSecurityClient.__new__(DynamicSecurityClient), {"nope": 1})


# --------------------------------------------------------------------------- broker


class Broker:
    """A private dynsec Mosquitto and its admin password."""

    def __init__(self, server: Any, admin_password: str) -> None:
        self.server = server
        self.host, self.port = server.host, server.port
        self.admin_password = admin_password

    def client(self, username: str | None, password: str | None, **kwargs: Any) -> MQTTManager:
        """An MQTT 5 manager for ``username`` on this broker."""
        kwargs.setdefault("connect_timeout", 3.0)
        kwargs.setdefault("reconnect_min_delay", 0.1)
        kwargs.setdefault("reconnect_max_delay", 0.5)
        return MQTTManager(self.host, self.port, username=username, password=password, protocol="5", **kwargs)


@pytest.fixture
def dynsec_broker(mosquitto_factory: Callable[..., Any], tmp_path: Path) -> Broker:
    """A private Mosquitto with the dynamic-security plugin and one admin client; anonymous refused."""
    if not PLUGIN.exists():
        from tests.conftest import unavailable

        unavailable(f"the dynamic-security plugin is not installed at {PLUGIN}")
    password = secrets.token_urlsafe(24)
    path = tmp_path / "dynamic-security.json"
    path.write_text(json.dumps(bootstrap_config("energy-admin", password)))
    # max_queued_messages 0 (the factory's "unlimited") makes Mosquitto 2.0.11 drop the
    # connection of an MQTT 5 client right after it refuses one of its QoS 1 publishes.
    extra = [f"plugin {PLUGIN}", f"plugin_opt_config_file {path}", "allow_anonymous false", "max_queued_messages 1000"]
    server = mosquitto_factory(extra)
    return Broker(server, password)


@pytest.fixture
async def sync(dynsec_broker: Broker) -> AsyncIterator[DynamicSecuritySync]:
    """A sync over a connected admin manager, with the default ACL access applied."""
    async with dynsec_broker.client("energy-admin", dynsec_broker.admin_password, client_id="admin") as admin:
        sync = DynamicSecuritySync(DynamicSecurityClient(admin), POLICY)
        await sync.apply_defaults()
        yield sync


async def test_sync_is_idempotent(sync: DynamicSecuritySync) -> None:
    """Re-running every sync step writes nothing: the second run finds the broker already right."""
    assert await sync.sync_device("meter-a", "meter", password="secret-a-" + "x" * 20)
    assert await sync.sync_client("svc:ingest", "service", client_id="ingest", password="p" * 24)
    assert await sync.apply_defaults() == []
    assert await sync.sync_device("meter-a", "meter") == []
    assert await sync.sync_client("svc:ingest", "service", client_id="ingest") == []
    assert await sync.resync() == []
    assert await sync.disable("meter-a") == ["disableClient"]
    assert await sync.disable("meter-a") == []
    assert await sync.delete("meter-a") == ["deleteClient", "deleteRole"]
    assert await sync.delete("meter-a") == []


async def test_resync_repairs_acls_changed_behind_its_back(sync: DynamicSecuritySync) -> None:
    """An ACL added by hand to a managed role is removed, a missing one added back."""
    await sync.sync_device("meter-a", "meter", password="s" * 24)
    role = "energy:client:meter-a"
    await sync.client.call("addRoleACL", rolename=role, acltype="subscribePattern", topic="#", priority=0, allow=True)
    await sync.client.call("removeRoleACL", rolename=role, acltype="publishClientSend", topic="devices/meter-a/status")
    assert sorted(await sync.resync()) == ["addRoleACL", "removeRoleACL"]
    assert await sync.resync() == []


async def test_refused_command_raises_typed_error(sync: DynamicSecuritySync) -> None:
    """A command the plugin refuses raises DynamicSecurityError with the broker's reason; an unknown role too."""
    with pytest.raises(DynamicSecurityError) as info:
        await sync.client.call("addClientRole", username="nobody", rolename="none")
    assert info.value.error == "Client not found"
    assert info.value.not_found
    assert info.value.error_code == "DYNSEC_COMMAND_FAILED"
    with pytest.raises(DynamicSecurityError, match="not in the policy"):
        await sync.sync_device("meter-x", "operator")


async def test_meter_is_confined_to_its_own_topics(
    dynsec_broker: Broker, sync: DynamicSecuritySync, wait_until: WaitUntil
) -> None:
    """Meter A cannot publish as B or subscribe to devices/# or B's commands; its own traffic flows."""
    secret_a, secret_b, service_pw = (secrets.token_urlsafe(24) for _ in range(3))
    await sync.sync_device("meter-a", "meter", password=secret_a)
    await sync.sync_device("meter-b", "meter", password=secret_b)
    await sync.sync_client("svc:ingest", "service", client_id="ingest", password=service_pw)
    seen: list[tuple[str, Any]] = []
    commands: list[Any] = []

    async def collect(message: MQTTMessage) -> None:
        seen.append((message.topic, message.payload))

    async def on_command(message: MQTTMessage) -> None:
        commands.append(message.payload)

    service = dynsec_broker.client("svc:ingest", service_pw, client_id="ingest")
    meter_a = dynsec_broker.client("meter-a", secret_a, client_id="meter-a")
    async with service, meter_a:
        await service.subscribe("devices/+/telemetry", collect)
        await service.subscribe("devices/+/status", collect)
        await meter_a.subscribe("devices/meter-a/commands", on_command)
        await meter_a.publish("devices/meter-a/telemetry", {"power_w": 1})
        for topic in ("devices/meter-b/telemetry", "devices/meter-b/status", "services/ingest/status"):
            with pytest.raises(PublishError) as refused:
                await meter_a.publish(topic, {"power_w": 666})
            assert refused.value.details["reason_code"] == 0x87
        for topic_filter in ("devices/#", "devices/meter-b/commands", "devices/+/commands", "#"):
            with pytest.raises(MessagingError, match="refused the subscription"):
                await meter_a.subscribe(topic_filter, collect)
        await service.publish("devices/meter-a/commands", {"command": "ping"})
        await wait_until(lambda: commands and seen, within=5)
        await asyncio.sleep(0.3)  # time for a wrongly delivered message to show up
    assert seen == [("devices/meter-a/telemetry", {"power_w": 1})]
    assert commands == [{"command": "ping"}]


async def test_revoked_device_is_disconnected_and_cannot_reconnect(
    dynsec_broker: Broker, sync: DynamicSecuritySync, wait_until: WaitUntil
) -> None:
    """Disabling a device (revocation) kicks its open connection and refuses every later login."""
    secret = secrets.token_urlsafe(24)
    await sync.sync_device("meter-a", "meter", password=secret)
    async with dynsec_broker.client("meter-a", secret, client_id="meter-a") as meter:
        assert meter.is_connected
        await sync(_Event("revoked", "meter-a", "meter"))
        await wait_until(lambda: not meter.is_connected, within=5)
        await asyncio.sleep(0.5)  # reconnect attempts run meanwhile
        assert not meter.is_connected
        assert meter.state.reconnect_count == 0
    with pytest.raises(MessagingConnectionError):
        await dynsec_broker.client("meter-a", secret, connect_timeout=1.0).connect()


async def test_rotated_secret_replaces_the_old_one(dynsec_broker: Broker, sync: DynamicSecuritySync) -> None:
    """After a rotation event the new secret logs in and the old one is refused (one password per client)."""
    old, new = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    await sync(_Event("provisioned", "meter-a", "meter", old))
    async with dynsec_broker.client("meter-a", old):
        pass
    await sync(_Event("rotated", "meter-a", "meter", new))
    async with dynsec_broker.client("meter-a", new) as meter:
        assert meter.is_connected
    with pytest.raises(MessagingConnectionError):
        await dynsec_broker.client("meter-a", old, connect_timeout=1.0).connect()
    await sync(_Event("deleted", "meter-a", None))
    with pytest.raises(MessagingConnectionError):
        await dynsec_broker.client("meter-a", new, connect_timeout=1.0).connect()


def _connect_packet(username: bytes, password: bytes | None) -> bytes:
    """A raw MQTT 3.1.1 CONNECT (so usernames no client library would send can be tried)."""
    flags = 0x02 | 0x80 | (0x40 if password is not None else 0)
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + b"\x00\x0a" + b"\x00\x05probe"
    body += struct.pack("!H", len(username)) + username
    if password is not None:
        body += struct.pack("!H", len(password)) + password
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            break
    return b"\x10" + encoded + body


def _raw_connect(host: str, port: int, username: bytes, password: bytes | None) -> int | None:
    """Send a raw CONNECT; return the CONNACK return code, or None if the broker closed the connection."""
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(_connect_packet(username, password))
        data = b""
        while len(data) < 4:
            chunk = sock.recv(4 - len(data))
            if not chunk:
                return None
            data += chunk
    return data[3]


@pytest.mark.parametrize(
    ("username", "password"),
    [
        (b"meter-a", b"wrong-password"),
        (b"ghost-meter-9", b"anything"),
        (b"", b"anything"),
        (b"m" * 65_535, b"anything"),  # the longest username MQTT can carry
        (b"meter-\xff\xfe", b"anything"),  # not UTF-8
        (b"meter-a", None),
    ],
    ids=["wrong-password", "unknown-device", "empty-username", "64k-username", "non-utf8-username", "no-password"],
)
async def test_hostile_logins_are_refused(
    dynsec_broker: Broker, sync: DynamicSecuritySync, username: bytes, password: bytes | None
) -> None:
    """Each bad login is refused (CONNACK 4/5, or the connection closed) and the broker keeps serving."""
    secret = secrets.token_urlsafe(24)
    await sync.sync_device("meter-a", "meter", password=secret)
    code = await asyncio.to_thread(_raw_connect, dynsec_broker.host, dynsec_broker.port, username, password)
    assert code in (None, 4, 5)
    assert (
        await asyncio.to_thread(_raw_connect, dynsec_broker.host, dynsec_broker.port, b"meter-a", secret.encode()) == 0
    )
    assert await sync.sync_device("meter-a", "meter") == []  # the admin connection still works


async def test_password_provider_is_called_before_every_connect(
    dynsec_broker: Broker, sync: DynamicSecuritySync, wait_until: WaitUntil
) -> None:
    """A password provider gives the password of each (re)connect: a changed password is picked up on reconnect."""
    passwords = [secrets.token_urlsafe(24) for _ in range(2)]
    await sync.sync_client("svc:ingest", "service", client_id="ingest", password=passwords[0])
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return passwords[min(calls, 2) - 1]

    service = dynsec_broker.client("svc:ingest", None, client_id="ingest", password_provider=provider)
    async with service:
        assert calls == 1
        await sync.client.call("setClientPassword", username="svc:ingest", password=passwords[1])
        await sync.client.call("disableClient", username="svc:ingest")  # kicks the connection
        await sync.client.call("enableClient", username="svc:ingest")
        await wait_until(lambda: service.state.reconnect_count >= 1 and service.is_connected, within=10)
        assert calls >= 2


async def test_failing_password_provider_is_a_failed_connect(dynsec_broker: Broker) -> None:
    """A provider that raises makes the connect fail with a clear error, not crash the supervisor."""

    async def provider() -> str:
        raise RuntimeError("token service down")

    manager = dynsec_broker.client("svc:ingest", None, password_provider=provider, connect_timeout=1.0)
    with pytest.raises(MessagingConnectionError, match="token service down"):
        await manager.connect()


def test_password_and_provider_are_exclusive() -> None:
    """Giving both a fixed password and a provider is an options error naming the option."""
    from energy_messaging.errors import MQTTOptionsError

    async def provider() -> str:
        return "x"

    with pytest.raises(MQTTOptionsError, match="password_provider"):
        MQTTManager("127.0.0.1", 1, password="a", password_provider=provider)


class _Event:
    """A credential event of the shape energy-auth's CredentialEvent has."""

    def __init__(self, kind: str, device_id: str, role: str | None, secret: str | None = None) -> None:
        self.kind, self.device_id, self.role, self.secret = kind, device_id, role, secret
