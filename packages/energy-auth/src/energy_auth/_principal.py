"""The authenticated caller: a user (from a token), a device or a service (from an API key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from energy_auth._errors import MissingClaimError
from energy_auth._permissions import PermissionChecker, RoleHierarchy

__all__ = ["Principal"]


def _strings(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list | tuple | set | frozenset):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and what they may do.

    Attributes:
        subject: The user id (``sub``, or the seed's ``user_id``) or the device/service id.
        kind: ``"user"``, ``"device"`` or ``"service"``.
        permissions: Granted permissions (wildcards allowed).
        roles: Held roles (before hierarchy expansion).
        claims: The verified token payload (empty for API keys).
        token_id: The token's ``jti`` or the API key's id.
    """

    subject: str
    kind: str = "user"
    permissions: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)
    token_id: str | None = None

    @classmethod
    def from_claims(
        cls, claims: Mapping[str, Any], *, permissions_claim: str = "permissions", roles_claim: str = "roles"
    ) -> Principal:
        """Build a user principal from a verified access-token payload.

        Roles come from ``roles_claim`` (a list) or the seed's single ``role``;
        permissions from ``permissions_claim`` (a list) or an OAuth ``scope`` string.

        Raises:
            MissingClaimError: The payload has neither ``sub`` nor ``user_id``.
        """
        subject = claims.get("sub", claims.get("user_id"))
        if not isinstance(subject, str | int) or isinstance(subject, bool) or subject == "":
            raise MissingClaimError("The token names no subject ('sub' or 'user_id').", {"claim": "sub"})
        roles = _strings(claims.get(roles_claim)) | _strings(claims.get("role"))
        permissions = _strings(claims.get(permissions_claim)) | _strings(claims.get("scope"))
        jti = claims.get("jti")
        return cls(str(subject), "user", permissions, roles, dict(claims), jti if isinstance(jti, str) else None)

    def has_permission(self, permission: str) -> bool:
        """Tell whether this principal holds ``permission`` (see :class:`PermissionChecker`)."""
        return PermissionChecker.has_permission(self.permissions, permission)

    def has_role(self, role: str, hierarchy: RoleHierarchy | None = None) -> bool:
        """Tell whether this principal holds ``role``, directly or through the hierarchy."""
        return PermissionChecker.has_role(self.roles, role, hierarchy)
