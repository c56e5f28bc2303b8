"""Device commands and their lifecycle."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Command", "CommandHook", "CommandState"]

#: queued → sent → succeeded | failed | timed_out, or queued → expired / failed (offline).
CommandState = Literal["queued", "sent", "succeeded", "failed", "timed_out", "expired"]

FINAL_STATES = frozenset({"succeeded", "failed", "timed_out", "expired"})


@dataclass(slots=True)
class Command:
    """One command to one device, with its lifecycle.

    Attributes:
        device_id: Target device.
        command: Command name.
        params: JSON parameters.
        command_id: Unique id; also the MQTT 5 correlation data.
        correlation_id: The request's correlation id when the command was sent.
        state: Current lifecycle state.
        result: The device's result once ``succeeded``.
        error: The error object once ``failed``/``timed_out``/``expired``.
        history: ``(state, epoch seconds)`` for every transition.
    """

    device_id: str
    command: str
    params: dict[str, Any] = field(default_factory=dict)
    command_id: str = field(default_factory=lambda: os.urandom(16).hex())
    correlation_id: str | None = None
    state: CommandState = "queued"
    result: Any = None
    error: dict[str, Any] | None = None
    history: list[tuple[str, float]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Whether the command reached a final state."""
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for audit logs."""
        return {
            "command_id": self.command_id,
            "device_id": self.device_id,
            "command": self.command,
            "params": self.params,
            "correlation_id": self.correlation_id,
            "state": self.state,
            "result": self.result,
            "error": self.error,
            "history": [list(item) for item in self.history],
        }

    def move(self, state: CommandState) -> None:
        """Record a transition."""
        self.state = state
        self.history.append((state, time.time()))


#: Called on every lifecycle transition (sync or async); errors are logged, never raised.
CommandHook = Callable[[Command], Awaitable[None] | None]
