"""Keep Mosquitto's dynamic-security state equal to the access policy and the device credentials.

Every client (a device, or a service with a static password) gets a role of its own,
``<prefix>client:<username>``, holding its concrete ACLs (:func:`role_acls`); the role's
``textdescription`` records the policy role and ids it was built from, so :meth:`resync`
can rebuild every client's ACLs after the policy changed. Every write is preceded by a
read and only made when the broker differs, so running a sync twice changes nothing.

Passwords: Mosquitto keeps one password per client and energy-auth stores only
hashes, so a password reaches the broker only with a credential event (provision,
rotation) or an explicit ``password=``. The rotation overlap cannot be honoured by the
broker: after ``rotated`` only the new secret works there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from energy_messaging.dynsec._admin import DynamicSecurityClient, raise_for
from energy_messaging.dynsec._errors import DynamicSecurityError
from energy_messaging.dynsec._plan import DEFAULT_ACL_ACCESS, acl_changes, client_role_name, role_acls

__all__ = ["CredentialChange", "DynamicSecuritySync"]

logger = logging.getLogger("energy_messaging.dynsec")


class CredentialChange(Protocol):
    """What the sync reads of a credential event (energy-auth's ``CredentialEvent`` fits)."""

    @property
    def kind(self) -> str:
        """``provisioned``, ``rotated``, ``revoked`` or ``deleted``."""

    @property
    def device_id(self) -> str:
        """The device (its MQTT username)."""

    @property
    def role(self) -> str | None:
        """Its policy role."""

    @property
    def secret(self) -> str | None:
        """The new plaintext secret (provisioned/rotated only)."""


class DynamicSecuritySync:
    """Apply a policy (plain data) and device credentials to Mosquitto's dynamic security.

    Args:
        client: The admin connection.
        policy: ``AccessPolicy.to_dict()`` output (``{"roles": {name: {"publish": [...], ...}}}``).
        role_prefix: Prefix of the roles and the marker of the clients this sync manages.

    Use it as a credential listener, so new and rotated secrets reach the broker and a
    revoked device is disabled (the broker disconnects it at once):
    ``DeviceCredentials(store, listeners=[sync])``.

    Example:
        >>> async def main(admin: DynamicSecurityClient) -> None:  # doctest: +SKIP
        ...     sync = DynamicSecuritySync(admin, DEFAULT_ACCESS_POLICY.to_dict())
        ...     await sync.apply_defaults()
        ...     await sync.sync_device("meter-17", "meter", password=secret)
    """

    def __init__(
        self, client: DynamicSecurityClient, policy: Mapping[str, Any], *, role_prefix: str = "energy:"
    ) -> None:
        roles = policy.get("roles") if isinstance(policy, Mapping) else None
        if not isinstance(roles, Mapping):
            raise DynamicSecurityError(
                "The policy data needs a 'roles' mapping (AccessPolicy.to_dict()).", "sync", None
            )
        self.client = client
        self.policy = policy
        self.role_prefix = role_prefix

    # ------------------------------------------------------------------ listener
    async def __call__(self, event: CredentialChange) -> None:
        """Apply one credential event (the ``DeviceCredentials`` listener signature)."""
        if event.kind in ("provisioned", "rotated"):
            await self.sync_device(event.device_id, event.role or "", password=event.secret)
        elif event.kind == "revoked":
            await self.disable(event.device_id)
        elif event.kind == "deleted":
            await self.delete(event.device_id)

    # ------------------------------------------------------------------ whole broker
    async def apply_defaults(self) -> list[str]:
        """Set the default ACL access to deny (publish, receive, subscribe); return the writes made."""
        data = await self.client.call("getDefaultACLAccess")
        current = {str(a.get("acltype", "")).lower(): a.get("allow") for a in data.get("acls", ())}
        if all(current.get(acl["acltype"].lower()) == acl["allow"] for acl in DEFAULT_ACL_ACCESS):
            return []
        await self.client.call("setDefaultACLAccess", acls=list(DEFAULT_ACL_ACCESS))
        return ["setDefaultACLAccess"]

    async def resync(self) -> list[str]:
        """Rebuild the ACLs of every client role of this sync from the current policy; return the writes.

        Clients whose policy role is gone lose every ACL (deny), not their account.
        """
        data = await self.client.call("listRoles", verbose=True, count=-1, offset=0)
        writes: list[str] = []
        for role in data.get("roles", ()):
            name = str(role.get("rolename", ""))
            origin = _origin(role.get("textdescription"))
            if not name.startswith(f"{self.role_prefix}client:") or origin is None:
                continue
            desired = self._acls(origin.get("role"), origin.get("device_id"), origin.get("client_id"))
            writes += await self._write(self._acl_commands(name, role.get("acls", ()), desired))
        return writes

    # ------------------------------------------------------------------ one client
    async def sync_device(self, device_id: str, role: str, *, password: str | None = None) -> list[str]:
        """Create or repair a device's client and role (``{device_id}`` = ``{client_id}`` = its id).

        Returns:
            The names of the write commands sent (empty when the broker was already right).

        Raises:
            DynamicSecurityError: Unknown policy role, or the broker refused a command.
        """
        return await self.sync_client(device_id, role, device_id=device_id, client_id=device_id, password=password)

    async def sync_client(
        self,
        username: str,
        role: str,
        *,
        device_id: str | None = None,
        client_id: str | None = None,
        password: str | None = None,
        bind_client_id: bool = False,
    ) -> list[str]:
        """Create or repair one client (a device, or a service with a static password) and its role.

        Args:
            username: MQTT username (a device id, or ``svc:<name>``).
            role: The policy role it holds.
            device_id: Fills ``{device_id}``.
            client_id: Fills ``{client_id}``.
            password: Sets the password (a new client without one cannot log in).
            bind_client_id: Only ``client_id`` may log in with this username.

        Returns:
            The names of the write commands sent.

        Raises:
            DynamicSecurityError: Unknown policy role, or the broker refused a command.
        """
        desired = self._acls(role, device_id, client_id)
        rolename = client_role_name(self.role_prefix, username)
        origin = json.dumps({"role": role, "device_id": device_id, "client_id": client_id}, sort_keys=True)
        got_role, got_client = await self.client.run(
            [{"command": "getRole", "rolename": rolename}, {"command": "getClient", "username": username}]
        )
        commands: list[dict[str, Any]] = []
        if got_role.get("error") is not None:
            _raise_unless_missing(got_role)
            commands.append(
                {
                    "command": "createRole",
                    "rolename": rolename,
                    "textname": role,
                    "textdescription": origin,
                    "acls": desired,
                }
            )
        else:
            current = got_role.get("data", {}).get("role", {})
            if current.get("textdescription") != origin:
                commands.append(
                    {"command": "modifyRole", "rolename": rolename, "textname": role, "textdescription": origin}
                )
            commands += self._acl_commands(rolename, current.get("acls", ()), desired)
        if got_client.get("error") is not None:
            _raise_unless_missing(got_client)
            create: dict[str, Any] = {
                "command": "createClient",
                "username": username,
                "roles": [{"rolename": rolename}],
            }
            if password is not None:
                create["password"] = password
            if bind_client_id and client_id:
                create["clientid"] = client_id
            commands.append(create)
        else:
            current = got_client.get("data", {}).get("client", {})
            commands += self._client_commands(
                username, rolename, current, password, client_id if bind_client_id else None
            )
        return await self._write(commands)

    async def disable(self, username: str) -> list[str]:
        """Disable a client: the broker refuses its logins and disconnects it now (idempotent)."""
        (got,) = await self.client.run([{"command": "getClient", "username": username}])
        if got.get("error") is not None:
            _raise_unless_missing(got)
            return []
        if got.get("data", {}).get("client", {}).get("disabled"):
            return []
        return await self._write([{"command": "disableClient", "username": username}])

    async def delete(self, username: str) -> list[str]:
        """Delete a client and its role (idempotent; the client is disconnected)."""
        rolename = client_role_name(self.role_prefix, username)
        got_role, got_client = await self.client.run(
            [{"command": "getRole", "rolename": rolename}, {"command": "getClient", "username": username}]
        )
        commands = []
        if got_client.get("error") is None:
            commands.append({"command": "deleteClient", "username": username})
        else:
            _raise_unless_missing(got_client)
        if got_role.get("error") is None:
            commands.append({"command": "deleteRole", "rolename": rolename})
        else:
            _raise_unless_missing(got_role)
        return await self._write(commands)

    # ------------------------------------------------------------------ helpers
    def _acls(self, role: object, device_id: object, client_id: object) -> list[dict[str, Any]]:
        spec = self.policy["roles"].get(role) if isinstance(role, str) else None
        if not isinstance(spec, Mapping):
            raise DynamicSecurityError(
                f"Role {role!r} is not in the policy; known roles: {sorted(self.policy['roles'])}.",
                "sync",
                "unknown role",
            )
        return role_acls(
            spec,
            device_id=device_id if isinstance(device_id, str) else None,
            client_id=client_id if isinstance(client_id, str) else None,
        )

    @staticmethod
    def _acl_commands(rolename: str, current: Any, desired: list[dict[str, Any]]) -> list[dict[str, Any]]:
        add, remove = acl_changes(current if isinstance(current, list) else [], desired)
        commands = [
            {"command": "removeRoleACL", "rolename": rolename, "acltype": a["acltype"], "topic": a["topic"]}
            for a in remove
        ]
        return commands + [{"command": "addRoleACL", "rolename": rolename, **acl} for acl in add]

    def _client_commands(
        self, username: str, rolename: str, current: Mapping[str, Any], password: str | None, client_id: str | None
    ) -> list[dict[str, Any]]:
        commands: list[dict[str, Any]] = []
        held = {str(r.get("rolename")) for r in current.get("roles", ()) if isinstance(r, Mapping)}
        if rolename not in held:
            commands.append({"command": "addClientRole", "username": username, "rolename": rolename})
        # A role of ours that is not this client's is dropped; roles given by hand stay.
        commands += [
            {"command": "removeClientRole", "username": username, "rolename": other}
            for other in sorted(held - {rolename})
            if other.startswith(self.role_prefix)
        ]
        if client_id is not None and current.get("clientid") != client_id:
            commands.append({"command": "setClientId", "username": username, "clientid": client_id})
        if password is not None:
            commands.append({"command": "setClientPassword", "username": username, "password": password})
        if current.get("disabled"):
            commands.append({"command": "enableClient", "username": username})
        return commands

    async def _write(self, commands: list[dict[str, Any]]) -> list[str]:
        for response in await self.client.run(commands):
            raise_for(response)
        names = [str(c["command"]) for c in commands]
        if names:
            logger.info("dynamic security: %s", ", ".join(names))
        return names


def _raise_unless_missing(response: dict[str, Any]) -> None:
    if not str(response.get("error", "")).endswith("not found"):
        raise_for(response)


def _origin(text: object) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
