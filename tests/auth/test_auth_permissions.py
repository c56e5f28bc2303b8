"""Tests for PermissionChecker and RoleHierarchy: wildcard and hierarchy tables, deny by default."""

from __future__ import annotations

from typing import Any

import pytest
from energy_auth import DEFAULT_ROLE_HIERARCHY, MissingClaimError, PermissionChecker, Principal, RoleHierarchy


@pytest.mark.parametrize(
    ("granted", "required", "allowed"),
    [
        (["users:read"], "users:read", True),
        (["users:write"], "users:read", False),
        (["users:*"], "users:read", True),
        (["users:*"], "users:profile:write", True),
        (["users:*"], "devices:read", False),
        (["*"], "anything:at:all", True),
        (["*:read"], "devices:read", True),
        (["*:read"], "devices:write", False),
        (["*:read"], "devices:config:read", False),
        (["devices:*:read"], "devices:config:read", True),
        (["devices:*:read"], "devices:config:write", False),
        (["users:read:*"], "users:read", False),
        (["users"], "users:read", False),
        (["users:read"], "users:read:all", False),
        (["Users:Read"], "users:read", False),
        (["users:read "], "users:read", False),
        (["users::read"], "users:read", False),
        (["users*"], "users:read", False),
        ([], "users:read", False),
        (None, "users:read", False),
        ([None, 5, "users:read"], "users:read", True),
        ("users:read devices:read", "devices:read", True),
        ("users:read devices:read", "devices:write", False),
    ],
)
def test_permission_table(granted: Any, required: str, allowed: bool) -> None:
    """Exact grants, wildcards and scope strings match as documented; everything else is denied."""
    assert PermissionChecker.has_permission(granted, required) is allowed


@pytest.mark.parametrize("required", ["", "users:*", "*", "users::read", " users:read", None, 5])
def test_required_permission_must_be_concrete(required: Any) -> None:
    """A required permission with a wildcard, empty segment or wrong type is a programming error."""
    with pytest.raises(ValueError, match="required permission"):
        PermissionChecker.has_permission(["*"], required)


@pytest.mark.parametrize(
    ("granted", "required", "any_", "all_"),
    [
        (["users:read", "devices:read"], ["users:read", "devices:read"], True, True),
        (["users:read"], ["users:read", "devices:read"], True, False),
        (["billing:read"], ["users:read", "devices:read"], False, False),
        (["*"], ["users:read", "devices:write"], True, True),
        (["users:read"], [], False, True),
    ],
)
def test_has_any_and_has_all(granted: list[str], required: list[str], any_: bool, all_: bool) -> None:
    """has_any needs one match, has_all needs every one (vacuously true for none)."""
    assert PermissionChecker.has_any(granted, required) is any_
    assert PermissionChecker.has_all(granted, required) is all_


@pytest.mark.parametrize(
    ("roles", "required", "allowed"),
    [
        (["admin"], "admin", True),
        (["admin"], "operator", True),
        (["admin"], "viewer", True),
        (["operator"], "viewer", True),
        (["operator"], "admin", False),
        (["viewer"], "operator", False),
        (["guest"], "viewer", False),
        ([], "viewer", False),
        (None, "viewer", False),
        ("admin", "viewer", True),
        (["Admin"], "admin", False),
    ],
)
def test_default_role_hierarchy(roles: Any, required: str, allowed: bool) -> None:
    """admin ⊇ operator ⊇ viewer; unknown roles grant nothing."""
    assert PermissionChecker.has_role(roles, required) is allowed


def test_flat_and_custom_hierarchies() -> None:
    """A flat hierarchy disables inclusion; a custom one is transitive."""
    assert not PermissionChecker.has_role(["admin"], "viewer", RoleHierarchy())
    custom = RoleHierarchy({"owner": ["manager"], "manager": ["technician", "auditor"]})
    assert PermissionChecker.has_role(["owner"], "auditor", custom)
    assert not PermissionChecker.has_role(["technician"], "manager", custom)
    assert sorted(DEFAULT_ROLE_HIERARCHY.expand(["operator"])) == ["operator", "viewer"]


def test_hierarchy_cycles_are_refused() -> None:
    """A cyclic hierarchy is a configuration mistake."""
    with pytest.raises(ValueError, match="cycle"):
        RoleHierarchy({"a": ["b"], "b": ["a"]})


@pytest.mark.parametrize(
    ("claims", "subject", "roles", "permissions"),
    [
        ({"user_id": "123", "role": "admin"}, "123", {"admin"}, set()),
        ({"sub": "u1", "roles": ["viewer", 5], "permissions": ["users:read"]}, "u1", {"viewer"}, {"users:read"}),
        ({"sub": "u1", "scope": "users:read devices:read"}, "u1", set(), {"users:read", "devices:read"}),
        ({"user_id": 7}, "7", set(), set()),
    ],
)
def test_principal_from_claims(claims: dict[str, Any], subject: str, roles: set[str], permissions: set[str]) -> None:
    """A principal reads sub/user_id, roles/role and permissions/scope from token claims."""
    principal = Principal.from_claims(claims)
    assert (principal.subject, set(principal.roles), set(principal.permissions)) == (subject, roles, permissions)


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": True}, {"user_id": None}, {"sub": ["a"]}])
def test_principal_needs_a_subject(claims: dict[str, Any]) -> None:
    """Claims without a usable subject do not make a principal."""
    with pytest.raises(MissingClaimError):
        Principal.from_claims(claims)
