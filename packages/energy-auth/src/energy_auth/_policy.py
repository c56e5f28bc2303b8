"""One access policy for the broker's ACLs and the HTTP guards: roles, topics, permissions.

A role names the topics its holder may publish and subscribe (patterns with whole-level
placeholders ``{device_id}`` and ``{client_id}``; ``{root}`` is the device topic root,
expanded when the policy is built) and the HTTP permissions that go with it. The policy
exports itself as plain data (:meth:`AccessPolicy.to_dict`), and :func:`topic_allowed`
answers from that data alone, so a package that must not import energy_auth (the MQTT
layer) can enforce the same rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from energy_common.exceptions import ConfigurationError

from energy_auth._acl import PLACEHOLDERS, allowed, fill, topic_allowed
from energy_auth._permissions import PermissionChecker, RoleHierarchy
from energy_auth._permissions import _segments as segments
from energy_auth._principal import Principal
from energy_auth._topics import is_topic_name, is_topic_pattern

__all__ = [
    "DEFAULT_ACCESS_POLICY",
    "PLACEHOLDERS",
    "POLICY_FORMAT_VERSION",
    "AccessPolicy",
    "PolicyError",
    "RoleKind",
    "RolePolicy",
    "TopicAction",
    "topic_allowed",
]  # PLACEHOLDERS and topic_allowed live in _acl; re-exported here with the policy they read

RoleKind = Literal["device", "service", "user"]
TopicAction = Literal["publish", "subscribe", "read"]
POLICY_FORMAT_VERSION = 1


class PolicyError(ConfigurationError):
    """The policy is malformed: an unknown role, a bad pattern or placeholder, a cycle."""

    error_code = "POLICY_INVALID"
    default_message = "The access policy is invalid."


@dataclass(frozen=True, slots=True)
class RolePolicy:
    """What one role may do.

    Attributes:
        name: The role name (as held by devices, in token ``roles`` claims, in API keys).
        kind: Who may hold it over MQTT: ``"device"`` (device credentials),
            ``"service"`` (service tokens) or ``"user"`` (HTTP only).
        publish: Topic patterns the holder may publish to.
        subscribe: Topic filter patterns the holder may subscribe to (``$share/+/...`` for
            shared subscriptions).
        permissions: HTTP permissions (``resource:action``, wildcards as in
            :class:`~energy_auth.PermissionChecker`).
        includes: Roles of the same kind whose rights this role also has.
    """

    name: str
    kind: RoleKind
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()


def _check_pattern(role: str, pattern: str, subscribe: bool) -> None:
    valid = is_topic_pattern(pattern) and (subscribe or not pattern.startswith("$share/"))
    for level in pattern.split("/") if isinstance(pattern, str) else ():
        if ("{" in level or "}" in level) and level not in PLACEHOLDERS:
            raise PolicyError(
                f"Role {role!r}: {pattern!r} has an unknown or partial placeholder; "
                f"placeholders are whole levels, one of {list(PLACEHOLDERS)}."
            )
    if not isinstance(pattern, str) or not valid:
        kind = "subscribe filter" if subscribe else "publish pattern"
        raise PolicyError(f"Role {role!r}: {pattern!r} is not a valid {kind}.")


class AccessPolicy:
    """The roles of the platform, for the broker (topics) and for HTTP (permissions).

    Args:
        roles: The roles (names must be unique).
        root: The device topic root that ``{root}`` in patterns stands for.

    Raises:
        PolicyError: A duplicate or unknown role, an invalid kind, pattern or permission,
            an include across kinds, or a cycle of includes.

    Example:
        >>> policy = DEFAULT_ACCESS_POLICY
        >>> policy.allows("meter", "publish", "devices/m1/telemetry", device_id="m1", client_id="m1")
        True
        >>> sorted(policy.permissions_for(["operator"]))
        ['commands:send', 'devices:read', 'devices:write']
    """

    def __init__(self, roles: Iterable[RolePolicy], *, root: str = "devices") -> None:
        if not isinstance(root, str) or not is_topic_name(root) or root.startswith("$"):
            raise PolicyError(f"The topic root {root!r} must be a topic name without wildcards or a leading '$'.")
        self.root = root
        declared: dict[str, RolePolicy] = {}
        for role in roles:
            if role.name in declared or not isinstance(role.name, str) or not role.name:
                raise PolicyError(f"Role names must be unique, non-empty strings; got {role.name!r} twice or empty.")
            if role.kind not in get_args(RoleKind):
                raise PolicyError(f"Role {role.name!r}: kind must be one of {list(get_args(RoleKind))}.")
            publish = tuple(p.replace("{root}", root) for p in role.publish)
            subscribe = tuple(p.replace("{root}", root) for p in role.subscribe)
            for pattern in publish:
                _check_pattern(role.name, pattern, subscribe=False)
            for pattern in subscribe:
                _check_pattern(role.name, pattern, subscribe=True)
            for permission in role.permissions:
                if not isinstance(permission, str) or segments(permission) is None:
                    raise PolicyError(f"Role {role.name!r}: {permission!r} is not a valid permission.")
            declared[role.name] = dataclasses.replace(role, publish=publish, subscribe=subscribe)
        for role in declared.values():
            for included in role.includes:
                if included not in declared or declared[included].kind != role.kind:
                    raise PolicyError(
                        f"Role {role.name!r} includes {included!r}, which is not a role of kind {role.kind!r}."
                    )
        try:
            self.hierarchy = RoleHierarchy({r.name: r.includes for r in declared.values()})
        except ValueError as exc:
            raise PolicyError(str(exc)) from exc
        self.roles: dict[str, RolePolicy] = {}
        for name, role in declared.items():
            closure = [declared[n] for n in sorted(self.hierarchy.expand([name]))]
            self.roles[name] = dataclasses.replace(
                role,
                publish=_union(r.publish for r in closure),
                subscribe=_union(r.subscribe for r in closure),
                permissions=_union(r.permissions for r in closure),
            )

    # ------------------------------------------------------------------ views

    def _of_kind(self, kind: RoleKind) -> frozenset[str]:
        return frozenset(name for name, role in self.roles.items() if role.kind == kind)

    @property
    def device_roles(self) -> frozenset[str]:
        """Roles a device credential may hold."""
        return self._of_kind("device")

    @property
    def service_roles(self) -> frozenset[str]:
        """Roles a service token may use on the broker."""
        return self._of_kind("service")

    # ------------------------------------------------------------------ HTTP side

    def permissions_for(self, roles: Iterable[str]) -> frozenset[str]:
        """Return the HTTP permissions the policy grants to holders of ``roles`` (unknown roles: none)."""
        granted: set[str] = set()
        for name in [roles] if isinstance(roles, str) else roles:
            role = self.roles.get(name)
            if role is not None:
                granted.update(role.permissions)
        return frozenset(granted)

    def has_permission(self, roles: Iterable[str], permission: str) -> bool:
        """Tell whether ``roles`` grant ``permission`` under this policy."""
        return PermissionChecker.has_permission(self.permissions_for(roles), permission)

    def grant(self, principal: Principal) -> Principal:
        """Return ``principal`` with the permissions its roles hold under this policy added.

        This is how the policy feeds ``require_permission``: ``install_auth(app, tokens,
        policy=policy)`` applies it to every authenticated caller.
        """
        extra = self.permissions_for(principal.roles)
        if extra <= principal.permissions:
            return principal
        return dataclasses.replace(principal, permissions=principal.permissions | extra)

    # ------------------------------------------------------------------ broker side

    def allows(
        self,
        role: str,
        action: TopicAction | str,
        topic: object,
        *,
        device_id: str | None = None,
        client_id: str | None = None,
    ) -> bool:
        """Tell whether ``role`` may ``action`` (publish/subscribe/read) on ``topic``; see :func:`topic_allowed`."""
        entry = self.roles.get(role) if isinstance(role, str) else None
        if entry is None:
            return False
        return allowed(entry.publish, entry.subscribe, action, topic=topic, device_id=device_id, client_id=client_id)

    def topics_for(
        self, role: str, *, device_id: str | None = None, client_id: str | None = None
    ) -> dict[str, list[str]]:
        """Return the role's patterns with placeholders filled (those that cannot be are left out).

        Useful to write per-client ACLs into a broker (Mosquitto dynamic security, EMQX).

        Raises:
            PolicyError: ``role`` is not in the policy.
        """
        entry = self.roles.get(role)
        if entry is None:
            raise PolicyError(f"Role {role!r} is not in the policy; known roles: {sorted(self.roles)}.")
        publish = [fill(p, device_id, client_id) for p in entry.publish]
        subscribe = [fill(p, device_id, client_id) for p in entry.subscribe]
        return {"publish": [f for f in publish if f is not None], "subscribe": [f for f in subscribe if f is not None]}

    # ------------------------------------------------------------------ plain data

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as JSON-ready plain data (the format :func:`topic_allowed` reads).

        ``{root}`` is expanded and every role's lists already include what it inherits,
        so a consumer needs no hierarchy logic::

            {"version": 1, "root": "devices", "placeholders": ["{device_id}", "{client_id}"],
             "roles": {"meter": {"kind": "device", "publish": [...], "subscribe": [...],
                                 "permissions": [...], "includes": [...]}, ...}}
        """
        return {
            "version": POLICY_FORMAT_VERSION,
            "root": self.root,
            "placeholders": list(PLACEHOLDERS),
            "roles": {
                name: {
                    "kind": role.kind,
                    "publish": list(role.publish),
                    "subscribe": list(role.subscribe),
                    "permissions": list(role.permissions),
                    "includes": list(role.includes),
                }
                for name, role in sorted(self.roles.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccessPolicy:
        """Build a policy from :meth:`to_dict` output or a hand-written dict of the same shape.

        Raises:
            PolicyError: The data is not a policy of a known version.
        """
        if not isinstance(data, Mapping) or data.get("version", POLICY_FORMAT_VERSION) != POLICY_FORMAT_VERSION:
            raise PolicyError(f"Expected a policy mapping of version {POLICY_FORMAT_VERSION}.")
        roles = data.get("roles")
        if not isinstance(roles, Mapping):
            raise PolicyError("The policy needs a 'roles' mapping.")
        try:
            parsed = [
                RolePolicy(
                    name,
                    spec["kind"],
                    tuple(spec.get("publish", ())),
                    tuple(spec.get("subscribe", ())),
                    tuple(spec.get("permissions", ())),
                    tuple(spec.get("includes", ())),
                )
                for name, spec in roles.items()
            ]
        except (KeyError, TypeError, AttributeError) as exc:
            raise PolicyError("Each role needs a 'kind' and lists 'publish', 'subscribe', 'permissions'.") from exc
        return cls(parsed, root=data.get("root", "devices"))

    def __repr__(self) -> str:
        return f"AccessPolicy(root={self.root!r}, roles={sorted(self.roles)})"


def _union(groups: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for group in groups:
        seen.update(dict.fromkeys(group))
    return tuple(seen)


DEFAULT_ACCESS_POLICY = AccessPolicy(
    [
        RolePolicy(
            "meter",
            "device",
            publish=("{root}/{device_id}/telemetry", "{root}/{device_id}/status", "{root}/{device_id}/replies/+"),
            subscribe=("{root}/{device_id}/commands",),
        ),
        RolePolicy(
            "service",
            "service",
            publish=("{root}/+/commands", "services/{client_id}/status"),
            subscribe=(
                "{root}/+/telemetry",
                "{root}/+/status",
                "{root}/+/replies/+",
                "$share/+/{root}/+/telemetry",
                "$share/+/{root}/+/status",
                "$share/+/{root}/+/replies/+",
            ),
            permissions=("devices:read", "commands:send"),
        ),
        RolePolicy("viewer", "user", permissions=("devices:read",)),
        RolePolicy("operator", "user", permissions=("devices:write", "commands:send"), includes=("viewer",)),
        RolePolicy("admin", "user", permissions=("devices:*", "commands:*"), includes=("operator",)),
    ]
)
"""The device protocol of the energy-messaging README, with ``root="devices"``.

A meter publishes only its own telemetry, status and replies and subscribes only to its
own commands; a service sends commands and reads every device's traffic (also through
shared subscriptions); viewer ⊂ operator ⊂ admin hold the HTTP permissions.
"""
