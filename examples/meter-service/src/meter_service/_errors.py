"""Errors of the meter service beyond the libraries' own."""

from __future__ import annotations

from energy_common.exceptions import EnergyError

__all__ = ["CLIENT_COMMAND_ERRORS", "CommandRejectedError"]

#: Device error codes that mean the client's command was wrong, not that the meter failed.
CLIENT_COMMAND_ERRORS = frozenset({"UNKNOWN_COMMAND", "INVALID_PARAMS"})


class CommandRejectedError(EnergyError):
    """The meter refused the command as wrong (unknown command, bad parameters): fix the request.

    ``details`` has the same keys as ``COMMAND_FAILED``'s (``device_id``, ``command``,
    ``command_id``) and ``error``, the meter's own ``{"code", "message"}``.
    """

    error_code = "COMMAND_REJECTED"
    status_code = 422
    default_message = "The meter rejected the command."
