"""Device commands and their lifecycle (a plain record every command store keeps as JSON)."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

__all__ = ["FINAL_STATES", "Command", "CommandHook", "CommandState"]

#: ``queued → sent → delivered? → succeeded | failed | timed_out | expired | cancelled``.
CommandState = Literal["queued", "sent", "delivered", "succeeded", "failed", "timed_out", "expired", "cancelled"]

#: States a command never leaves (a reply after ``timed_out`` is kept in ``late_reply``).
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "timed_out", "expired", "cancelled"})


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
        error: The error object once ``failed``/``timed_out``/``expired``/``cancelled``.
        history: ``(state, epoch seconds)`` for every transition.
        timeout: Seconds to wait for the reply once sent.
        expires_at: Epoch seconds after which a queued command expires unsent.
        deadline: Epoch seconds after which a sent command is ``timed_out`` (set when sent).
        deliver_when_online: Keep the command queued until the device's next ``online``.
        idempotency_key: The caller's key; a second request with it returns this command.
        late_reply: A reply that arrived after ``timed_out``: ``{"ok", "value", "at"}``.
        trace_context: The W3C trace context (``traceparent``, ``tracestate``) of the
            command's span when tracing is on, so that a replica other than the one that
            accepted it (after a deploy, say) publishes it in the same trace.
        version: Bumped by the store on every write (compare-and-set).
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
    timeout: float = 10.0
    expires_at: float | None = None
    deadline: float | None = None
    deliver_when_online: bool = False
    idempotency_key: str | None = None
    late_reply: dict[str, Any] | None = None
    trace_context: dict[str, str] | None = None
    version: int = 0

    @property
    def done(self) -> bool:
        """Whether the command reached a final state."""
        return self.state in FINAL_STATES

    def at(self, state: str) -> float | None:
        """Epoch seconds of the first transition to ``state``, or None."""
        return next((when for name, when in self.history if name == state), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (audit logs, the stores' records)."""
        data = {item.name: getattr(self, item.name) for item in fields(self)}
        data["history"] = [list(entry) for entry in self.history]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Command:
        """Rebuild a command from :meth:`to_dict` output (unknown keys are ignored)."""
        known = {item.name for item in fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        values["history"] = [(str(name), float(when)) for name, when in values.get("history", [])]
        return cls(**values)

    def move(self, state: CommandState, *, at: float | None = None) -> None:
        """Record a transition."""
        self.state = state
        self.history.append((state, time.time() if at is None else at))


#: Called on every lifecycle transition (sync or async); errors are logged, never raised.
CommandHook = Callable[[Command], Awaitable[None] | None]
