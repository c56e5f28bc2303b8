"""Broker usernames: a device id, or ``svc:<name>`` / ``svc:<role>:<name>`` for service tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from energy_auth.devices._ids import is_valid_device_id

__all__ = ["MAX_USERNAME_LENGTH", "SERVICE_PREFIX", "BrokerIdentity", "parse_username", "service_username"]

SERVICE_PREFIX = "svc:"
MAX_USERNAME_LENGTH = 256
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class BrokerIdentity:
    """Who a broker username says the client is (before or after authentication).

    Attributes:
        kind: ``"device"`` or ``"service"``.
        name: The device id, or the service name.
        role: The policy role (for a device: filled from its stored credential).
        expires_at: Unix time the credential ends (a service token's ``exp``), if known.
    """

    kind: Literal["device", "service"]
    name: str
    role: str | None = None
    expires_at: float | None = None

    @property
    def device_id(self) -> str | None:
        """The device id (``None`` for a service)."""
        return self.name if self.kind == "device" else None


def parse_username(username: object, *, default_service_role: str = "service") -> BrokerIdentity | None:
    """Parse a broker username; ``None`` when it is neither a device id nor a service name.

    ``meter-17`` is a device; ``svc:ingest-1`` is the service ``ingest-1`` in
    ``default_service_role``; ``svc:commander:api-2`` names the role explicitly. A device id
    never contains ``:``, so the two cannot collide. Never raises.

    Example:
        >>> parse_username("svc:ingest-1")
        BrokerIdentity(kind='service', name='ingest-1', role='service', expires_at=None)
    """
    if not isinstance(username, str) or not username or len(username) > MAX_USERNAME_LENGTH:
        return None
    if not username.startswith(SERVICE_PREFIX):
        return BrokerIdentity("device", username) if is_valid_device_id(username) else None
    parts = username[len(SERVICE_PREFIX) :].split(":")
    if len(parts) == 1:
        role, name = default_service_role, parts[0]
    elif len(parts) == 2:
        role, name = parts
    else:
        return None
    if _NAME.fullmatch(role) is None or _NAME.fullmatch(name) is None:
        return None
    return BrokerIdentity("service", name, role)


def service_username(name: str, role: str | None = None) -> str:
    """Return the broker username of a service: ``svc:<name>`` or ``svc:<role>:<name>``.

    Raises:
        ValueError: ``name`` or ``role`` is not 1-64 characters of ``A-Z a-z 0-9 . _ -``.
    """
    for part in (name, role):
        if part is not None and (not isinstance(part, str) or _NAME.fullmatch(part) is None):
            raise ValueError(f"{part!r} is not a valid service name or role (1-64 of A-Z a-z 0-9 . _ -).")
    return f"{SERVICE_PREFIX}{name}" if role is None else f"{SERVICE_PREFIX}{role}:{name}"
