"""Device identity of the meter service: credentials per meter, the access policy, the broker sync.

* Credentials: every registered meter gets its own (username = device id, a 256-bit
  secret shown once), stored as an argon2id hash in ``DEVICE_CREDENTIALS_STORE``
  (``auto``: Redis with ``REDIS_URL``, else the service's database; or ``memory``).
* Policy: :func:`meter_policy`, the default device protocol of energy-auth under the
  service's topic root, plus the service's right to publish its dead letters.
* Broker: with ``MQTT_DYNSEC_ADMIN_USERNAME``/``_PASSWORD`` (Mosquitto 2 with dynamic
  security) every credential change is synced into the broker, and the service gets a
  broker client per replica (``svc:service:<client id>``, a random password per process).
  With ``MQTT_SERVICE_TOKEN_SECRET`` (a broker that authenticates through energy-auth's
  HTTP endpoint, EMQX / mosquitto-go-auth) the service logs in as ``svc:<SERVICE_NAME>``
  with a fresh short-lived JWT before every (re)connect.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from typing import Any

from energy_auth import AccessPolicy, PasswordHasher, RolePolicy, TokenManager
from energy_auth.broker import issue_service_token, service_username
from energy_auth.devices import (
    DeviceCredentialExistsError,
    DeviceCredentials,
    DeviceCredentialStore,
    InMemoryDeviceCredentialStore,
)
from energy_common.database import Database
from energy_messaging import MQTTManager
from energy_messaging.dynsec import DynamicSecurityClient, DynamicSecuritySync

from meter_service._settings import MeterSettings, MQTTAddress

__all__ = ["DeviceIdentity", "meter_policy"]

logger = logging.getLogger("meter_service.identity")


def meter_policy(root: str) -> AccessPolicy:
    """The access policy of the service: meters confined to their topics, the service to its own."""
    device = "{root}/{device_id}"
    return AccessPolicy(
        [
            RolePolicy(
                "meter",
                "device",
                publish=(f"{device}/telemetry", f"{device}/status", f"{device}/replies/+"),
                subscribe=(f"{device}/commands",),
            ),
            RolePolicy(
                "service",
                "service",
                publish=("{root}/+/commands", "{root}/dead-letters", "services/{client_id}/status"),
                subscribe=tuple(
                    f"{share}{{root}}/+/{kind}"
                    for share in ("", "$share/+/")
                    for kind in ("telemetry", "status", "replies/+")
                ),
                permissions=("devices:read", "commands:send"),
            ),
            RolePolicy("viewer", "user", permissions=("devices:read",)),
            RolePolicy("operator", "user", permissions=("devices:write", "commands:send"), includes=("viewer",)),
            RolePolicy("admin", "user", permissions=("devices:*", "commands:*"), includes=("operator",)),
        ],
        root=root,
    )


class DeviceIdentity:
    """The credentials of the meters and the service's own broker login.

    Args:
        settings: The service settings.
        db: The service database (the SQL credential store lives there).
        redis: The service's Redis client, if any.
    """

    def __init__(self, settings: MeterSettings, db: Database, redis: Any = None) -> None:
        self.settings = settings
        self.policy = meter_policy(settings.mqtt_topic_root)
        kind = settings.device_credentials_store
        if kind == "auto":
            kind = "redis" if redis is not None else "sql"
        store: DeviceCredentialStore
        self._sql: Any = None
        if kind == "redis":
            from energy_auth.devices.redis import RedisDeviceCredentialStore  # noqa: PLC0415 - only with Redis

            store = RedisDeviceCredentialStore(redis, key_prefix=f"{settings.redis_key_prefix}credentials:")
        elif kind == "sql":
            from energy_auth.devices.sql import SQLDeviceCredentialStore  # noqa: PLC0415

            store = self._sql = SQLDeviceCredentialStore(db)
        else:
            store = InMemoryDeviceCredentialStore()
        self.store_kind = kind
        # Secrets are 256 random bits: OWASP's minimum argon2id parameters are ample for them.
        self.hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
        self.credentials = DeviceCredentials(store, hasher=self.hasher, roles=self.policy.device_roles)
        self.sync: DynamicSecuritySync | None = None
        self._admin: MQTTManager | None = None
        self._service_password = secrets.token_urlsafe(32)
        self._tokens: TokenManager | None = None
        if settings.mqtt_service_token_secret is not None:
            self._tokens = TokenManager(settings.mqtt_service_token_secret.get_secret_value(), audience="mqtt")
        # A fixed id: dynsec binds the service's client to it ({client_id} of its ACLs).
        self.client_id = settings.mqtt_client_id or f"{settings.service_name}-{os.urandom(4).hex()}"

    @property
    def service_username(self) -> str | None:
        """The service's broker username (``svc:<name>``) when it logs in as a service client."""
        if self.settings.mqtt_dynsec_enabled:
            # One dynsec client per replica (a client has one password): svc:service:<client id>.
            return service_username(self.client_id, "service")
        if self._tokens is not None:
            return service_username(self.settings.service_name)
        return None

    def mqtt_login(self, username: str | None, password: str | None) -> dict[str, Any]:
        """The MQTTManager keywords of the service's login: ``MQTT_URL``'s, or ``svc:<name>`` with a provider."""
        client_id = self.settings.mqtt_client_id
        if self.service_username is None:
            return {"username": username, "password": password, "client_id": client_id}
        return {
            "username": self.service_username,
            "password_provider": self.service_password,  # called before every (re)connect
            "client_id": self.client_id,
        }

    async def service_password(self) -> str:
        """The password of the next broker connection: a fresh JWT, or this process's dynsec password."""
        if self._tokens is not None:
            return issue_service_token(self._tokens, self.settings.service_name, ttl=timedelta(minutes=10))
        return self._service_password

    async def start(self, client_id: str) -> None:
        """Create the credential table; with a dynsec admin, connect it and sync the service client.

        Args:
            client_id: The service's MQTT client id (fills ``{client_id}`` of its ACLs).
        """
        if self._sql is not None:
            await self._sql.create_table()
        settings = self.settings
        if not settings.mqtt_dynsec_enabled or settings.mqtt_url is None:
            return
        assert settings.mqtt_dynsec_admin_password is not None  # noqa: S101 - mqtt_dynsec_enabled
        address = MQTTAddress(settings.mqtt_url)
        self._admin = MQTTManager(
            address.host,
            address.port,
            username=settings.mqtt_dynsec_admin_username,
            password=settings.mqtt_dynsec_admin_password.get_secret_value(),
            client_id=f"{client_id}-dynsec",
            tls=address.tls,
            clean_start=True,
        )
        await self._admin.connect()
        self.sync = DynamicSecuritySync(DynamicSecurityClient(self._admin), self.policy.to_dict())
        await self.sync.apply_defaults()
        await self.sync.resync()
        username = self.service_username
        assert username is not None  # noqa: S101 - dynsec enabled
        await self.sync.sync_client(
            username, "service", client_id=client_id, password=self._service_password, bind_client_id=True
        )
        self.credentials.listeners.append(self.sync)
        logger.info("dynamic security synced: the service logs in as %s", username)

    async def issue(self, device_id: str) -> str | None:
        """Provision a device's credential; return its secret, or None if it already has one."""
        try:
            new = await self.credentials.provision(device_id, role="meter")
        except DeviceCredentialExistsError:
            return None
        return new.secret

    async def issue_or_rotate(self, device_id: str) -> str:
        """A secret for ``device_id`` now (provisioned, or rotated when it had one): for simulated meters."""
        secret = await self.issue(device_id)
        if secret is None:
            secret = (await self.credentials.rotate(device_id, overlap=timedelta(0))).secret
        return secret

    async def forget(self, device_id: str) -> None:
        """Delete a device's credential (the broker client too, with dynsec)."""
        await self.credentials.delete(device_id)

    async def aclose(self) -> None:
        """Disconnect the dynsec admin and stop the hasher's threads."""
        if self._admin is not None:
            await self._admin.disconnect()
        self.hasher.close()
