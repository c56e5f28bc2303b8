"""Change events of device credentials, for a broker sync (e.g. Mosquitto dynamic security).

A broker that keeps its own client table needs the plaintext secret, which energy-auth
stores only as a hash: the moment to hand it over is the change itself. The event is
plain data (strings, numbers, ``None``), so a consumer types it with a Protocol of its
own and never imports energy_auth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CredentialEvent", "CredentialListener"]


@dataclass(frozen=True, slots=True)
class CredentialEvent:
    """One change of a device credential, after it was stored.

    Attributes:
        kind: ``"provisioned"``, ``"rotated"``, ``"revoked"`` or ``"deleted"``.
        device_id: The device (= its MQTT username).
        role: Its policy role (``None`` for ``"deleted"``).
        secret: The new plaintext secret (provisioned/rotated only; hidden from repr).
        previous_expires_at: After a rotation, Unix time the previous secret stops
            working (``None`` if it stopped at once). A broker holding one password per
            client cannot honour the window: it switches at once.
        certificate_fingerprint: SHA-256 of the device certificate, if one is held.
    """

    kind: Literal["provisioned", "rotated", "revoked", "deleted"]
    device_id: str
    role: str | None
    secret: str | None = field(default=None, repr=False)
    previous_expires_at: float | None = None
    certificate_fingerprint: str | None = None


CredentialListener = Callable[[CredentialEvent], Awaitable[None]]
"""``async (event) -> None``: called after each change; failures are logged, never raised."""
