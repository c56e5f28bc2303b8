"""Permission and role checks: pure functions, deny by default.

Permissions are ``resource:action`` strings (more segments allowed, e.g.
``devices:config:write``). A granted permission may use ``*`` for one segment; a
trailing ``*`` matches one or more remaining segments, so ``users:*`` grants
``users:read`` and ``users:profile:write`` and ``*`` grants everything. Required
permissions are always concrete.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["DEFAULT_ROLE_HIERARCHY", "PermissionChecker", "RoleHierarchy"]

Grants = Iterable[str] | str | None


def _segments(permission: str) -> list[str] | None:
    parts = permission.split(":")
    if not permission or any(not part or part != part.strip() for part in parts):
        return None
    return parts


def _required(permission: str) -> list[str]:
    parts = _segments(permission) if isinstance(permission, str) else None
    if parts is None or "*" in parts:
        raise ValueError(f"Invalid required permission {permission!r}: use concrete 'resource:action' strings.")
    return parts


def _grants(user_permissions: Grants) -> list[str]:
    if user_permissions is None:
        return []
    if isinstance(user_permissions, str):
        return user_permissions.split()  # an OAuth-style space-separated scope string
    return [p for p in user_permissions if isinstance(p, str)]


def _matches(granted: str, required: list[str]) -> bool:
    parts = _segments(granted)
    if parts is None:
        return False
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "*" and last:
            return len(required) > index
        if index >= len(required) or (part not in ("*", required[index])):
            return False
    return len(parts) == len(required)


class RoleHierarchy:
    """Which roles include which: ``admin`` ⊇ ``operator`` ⊇ ``viewer`` by default.

    Args:
        includes: Maps a role to the roles it directly includes; inclusion is transitive.

    Raises:
        ValueError: The mapping has a cycle.

    Example:
        >>> h = RoleHierarchy({"admin": ["operator"], "operator": ["viewer"]})
        >>> sorted(h.expand(["admin"]))
        ['admin', 'operator', 'viewer']
    """

    def __init__(self, includes: Mapping[str, Iterable[str]] | None = None) -> None:
        direct = {role: frozenset(children) for role, children in (includes or {}).items()}
        self._closure: dict[str, frozenset[str]] = {}
        for role, children in direct.items():
            seen: set[str] = set()
            stack = list(children)
            while stack:
                child = stack.pop()
                if child == role:
                    raise ValueError(f"The role hierarchy has a cycle through {role!r}.")
                if child not in seen:
                    seen.add(child)
                    stack.extend(direct.get(child, ()))
            self._closure[role] = frozenset(seen)

    def expand(self, roles: Grants) -> frozenset[str]:
        """Return ``roles`` plus every role they include."""
        held = set(_grants(roles))
        for role in list(held):
            held |= self._closure.get(role, frozenset())
        return frozenset(held)


DEFAULT_ROLE_HIERARCHY = RoleHierarchy({"admin": ["operator"], "operator": ["viewer"]})
"""admin ⊇ operator ⊇ viewer."""


class PermissionChecker:
    """Permission and role checks (static methods, as in the seed API).

    Example:
        >>> PermissionChecker.has_permission(["users:*"], "users:read")
        True
        >>> PermissionChecker.has_role(["operator"], "admin")
        False
    """

    @staticmethod
    def has_permission(user_permissions: Grants, required: str) -> bool:
        """Tell whether the granted permissions cover ``required`` (wildcards allowed in grants).

        Args:
            user_permissions: Granted permissions (an iterable, or a space-separated
                scope string); ``None`` grants nothing.
            required: A concrete permission such as ``"users:read"``.

        Raises:
            ValueError: ``required`` is empty, malformed or contains ``*``.
        """
        parts = _required(required)
        return any(_matches(granted, parts) for granted in _grants(user_permissions))

    @staticmethod
    def has_any(user_permissions: Grants, required: Iterable[str]) -> bool:
        """Tell whether at least one of ``required`` is granted (``False`` for none required)."""
        grants = _grants(user_permissions)
        return any(any(_matches(g, _required(r)) for g in grants) for r in list(required))

    @staticmethod
    def has_all(user_permissions: Grants, required: Iterable[str]) -> bool:
        """Tell whether every one of ``required`` is granted (``True`` for none required)."""
        grants = _grants(user_permissions)
        return all(any(_matches(g, _required(r)) for g in grants) for r in list(required))

    @staticmethod
    def has_role(user_roles: Grants, required: str, hierarchy: RoleHierarchy | None = None) -> bool:
        """Tell whether ``user_roles`` hold ``required`` directly or through the hierarchy.

        Args:
            user_roles: Held roles (an iterable or a single role string); ``None`` holds none.
            required: The role the action needs.
            hierarchy: Role inclusion; defaults to admin ⊇ operator ⊇ viewer. Pass
                ``RoleHierarchy()`` for flat roles.
        """
        if isinstance(user_roles, str):
            user_roles = [user_roles]
        return required in (hierarchy or DEFAULT_ROLE_HIERARCHY).expand(user_roles)
