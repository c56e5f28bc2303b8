"""The error of the dynamic-security sync."""

from __future__ import annotations

from typing import Any

from energy_common.exceptions import MessagingError

__all__ = ["DynamicSecurityError"]


class DynamicSecurityError(MessagingError):
    """The broker refused a ``$CONTROL/dynamic-security/v1`` command, or did not answer it.

    Attributes:
        command: The refused command's name (e.g. ``createRole``).
        error: The broker's error text (e.g. ``"Role not found"``), or None for a timeout.
    """

    error_code = "DYNSEC_COMMAND_FAILED"
    status_code = 502
    default_message = "The broker's dynamic-security plugin refused a command."

    def __init__(self, message: str, command: str, error: str | None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, {"command": command, "error": error, **(details or {})})
        self.command = command
        self.error = error

    @property
    def not_found(self) -> bool:
        """Whether the broker answered that the client, role or group does not exist."""
        return self.error is not None and self.error.endswith("not found")
