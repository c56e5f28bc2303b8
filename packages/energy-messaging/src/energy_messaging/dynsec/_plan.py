"""Pure translation of an access policy (plain data) into Mosquitto dynamic-security ACLs.

Mosquitto 2.0's dynamic security has no ``%u``/``%c`` substitution in ACL topics, so
every client gets a role of its own holding its concrete topics: the policy role's
patterns with ``{device_id}`` and ``{client_id}`` filled (a pattern whose placeholder
cannot be filled safely grants nothing). Each publish pattern becomes a
``publishClientSend`` ACL; each subscribe pattern a ``subscribePattern`` ACL plus a
``publishClientReceive`` ACL on the topic without its ``$share/<group>/`` prefix (the
delivery check sees the plain topic). Everything else is denied by the default ACL
access the sync sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "CONTROL_TOPIC",
    "DEFAULT_ACL_ACCESS",
    "RESPONSE_TOPIC",
    "acl_changes",
    "client_role_name",
    "fill_pattern",
    "role_acls",
]

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = "$CONTROL/dynamic-security/v1/response"

#: Deny by default: only what a client's role grants is allowed (unsubscribing is harmless).
DEFAULT_ACL_ACCESS: tuple[dict[str, Any], ...] = (
    {"acltype": "publishClientSend", "allow": False},
    {"acltype": "publishClientReceive", "allow": False},
    {"acltype": "subscribe", "allow": False},
    {"acltype": "unsubscribe", "allow": True},
)

_PLACEHOLDERS = ("{device_id}", "{client_id}")
_FORBIDDEN = ("/", "+", "#", "\x00")


def fill_pattern(pattern: str, *, device_id: str | None, client_id: str | None) -> str | None:
    """Fill the whole-level placeholders of a policy pattern; None if one cannot be filled safely.

    A value fills a level only if it is non-empty, holds no ``/``, ``+``, ``#`` or NUL
    and does not start with ``$`` (the same rule as energy-auth's ``topic_allowed``).

    Example:
        >>> fill_pattern("devices/{device_id}/telemetry", device_id="m1", client_id=None)
        'devices/m1/telemetry'
        >>> fill_pattern("devices/{device_id}/telemetry", device_id="a/b", client_id=None) is None
        True
    """
    levels = pattern.split("/")
    for index, level in enumerate(levels):
        if level in _PLACEHOLDERS:
            value = device_id if level == "{device_id}" else client_id
            if not value or value.startswith("$") or any(char in value for char in _FORBIDDEN):
                return None
            levels[index] = value
    return "/".join(levels)


def _strip_share(topic_filter: str) -> str:
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else topic_filter
    return topic_filter


def role_acls(role: Mapping[str, Any], *, device_id: str | None, client_id: str | None) -> list[dict[str, Any]]:
    """The dynamic-security ACLs of one client holding ``role`` (one entry of the policy's ``roles``).

    Args:
        role: ``{"publish": [...], "subscribe": [...], ...}`` from ``AccessPolicy.to_dict()``.
        device_id: Fills ``{device_id}`` (the device's id; None for a service).
        client_id: Fills ``{client_id}``.

    Returns:
        ACL dicts (``acltype``, ``topic``, ``priority``, ``allow``), sorted, without duplicates.
    """
    wanted: set[tuple[str, str]] = set()
    for pattern in role.get("publish", ()):
        topic = fill_pattern(pattern, device_id=device_id, client_id=client_id)
        if topic is not None:
            wanted.add(("publishClientSend", topic))
    for pattern in role.get("subscribe", ()):
        topic = fill_pattern(pattern, device_id=device_id, client_id=client_id)
        if topic is not None:
            wanted.add(("subscribePattern", topic))
            wanted.add(("publishClientReceive", _strip_share(topic)))
    return [{"acltype": kind, "topic": topic, "priority": 0, "allow": True} for kind, topic in sorted(wanted)]


def _key(acl: Mapping[str, Any]) -> tuple[str, str, bool, int]:
    return (
        str(acl.get("acltype", "")).lower(),
        str(acl.get("topic", "")),
        bool(acl.get("allow")),
        int(acl.get("priority", 0)),
    )


def acl_changes(
    current: Iterable[Mapping[str, Any]], desired: Iterable[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return ``(to_add, to_remove)`` that turn the ``current`` ACLs of a role into ``desired``.

    Example:
        >>> acl_changes([], [{"acltype": "subscribePattern", "topic": "a", "priority": 0, "allow": True}])[0][0][
        ...     "topic"
        ... ]
        'a'
    """
    have = {_key(acl): dict(acl) for acl in current}
    want = {_key(acl): dict(acl) for acl in desired}
    return [want[k] for k in sorted(want.keys() - have.keys())], [have[k] for k in sorted(have.keys() - want.keys())]


def client_role_name(prefix: str, username: str) -> str:
    """Name of the role that holds one client's ACLs, e.g. ``energy:client:meter-17``."""
    return f"{prefix}client:{username}"
