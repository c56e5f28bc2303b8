"""Where commands live: the ``CommandStore`` Protocol and the in-memory store (the embedded default).

Every store keeps the :class:`~energy_messaging.devices.Command` record as JSON and
offers the same four operations; all state changes go through :meth:`CommandStore.replace`,
a compare-and-set on the record's ``version``, so two replicas (or a reply and a
timeout) can never both move one command. The Redis store is
:mod:`energy_messaging.redis_commands`, the SQL one :mod:`energy_messaging.sql_commands`.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from energy_messaging._errors import CommandLimitError
from energy_messaging.devices._commands import Command

__all__ = ["CommandStore", "InMemoryCommandStore", "limit_error"]


def limit_error(device_id: str, limit: int) -> CommandLimitError:
    """The error every store raises when a device has ``limit`` unfinished commands."""
    return CommandLimitError(
        f"Device '{device_id}' already has {limit} commands in flight; retry when one has finished.",
        {"device_id": device_id, "limit": limit},
    )


@runtime_checkable
class CommandStore(Protocol):
    """Persisted commands, shared by the replicas of a service (Redis, SQL) or kept in process."""

    async def create(self, command: Command, *, max_in_flight: int | None = None) -> tuple[Command, bool]:
        """Store a new command atomically; return ``(command, created)``.

        If ``command.idempotency_key`` was used before for the same device, nothing is
        stored and the first command is returned with ``created=False``.

        Raises:
            CommandLimitError: The device has ``max_in_flight`` unfinished commands.
            CommandStoreError: The store failed.
        """

    async def get(self, command_id: str) -> Command | None:
        """Return the command or None."""

    async def replace(self, command: Command, expected_version: int) -> bool:
        """Write ``command`` if the stored version is still ``expected_version``; return whether it was.

        The store sets ``command.version`` to ``expected_version + 1`` on success and
        forgets a finished command from its in-flight bookkeeping.
        """

    async def open_commands(self, device_id: str | None = None) -> list[Command]:
        """Return unfinished commands (of one device, or all), oldest first."""


class InMemoryCommandStore:
    """Commands in this process's memory: the embedded default (lost on restart, not shared).

    Args:
        max_finished: Finished commands kept for lookups (the oldest are forgotten first).
    """

    def __init__(self, *, max_finished: int = 10_000) -> None:
        self._commands: dict[str, Command] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._finished: list[str] = []
        self._max_finished = max_finished
        self._lock = asyncio.Lock()

    async def create(self, command: Command, *, max_in_flight: int | None = None) -> tuple[Command, bool]:
        """Store a new command (see :meth:`CommandStore.create`)."""
        async with self._lock:
            if command.idempotency_key is not None:
                first = self._keys.get((command.device_id, command.idempotency_key))
                if first is not None and first in self._commands:
                    return self._copy(self._commands[first]), False
            if max_in_flight is not None:
                busy = sum(1 for c in self._commands.values() if c.device_id == command.device_id and not c.done)
                if busy >= max_in_flight:
                    raise limit_error(command.device_id, max_in_flight)
            command.version = 1
            self._commands[command.command_id] = self._copy(command)
            if command.idempotency_key is not None:
                self._keys[(command.device_id, command.idempotency_key)] = command.command_id
            return self._copy(command), True

    async def get(self, command_id: str) -> Command | None:
        """Return a copy of the command or None."""
        command = self._commands.get(command_id)
        return None if command is None else self._copy(command)

    async def replace(self, command: Command, expected_version: int) -> bool:
        """Compare-and-set on the version (see :meth:`CommandStore.replace`)."""
        current = self._commands.get(command.command_id)
        if current is None or current.version != expected_version:
            return False
        command.version = expected_version + 1
        self._commands[command.command_id] = self._copy(command)
        if command.done and not current.done:
            self._finished.append(command.command_id)
            while len(self._finished) > self._max_finished:
                old = self._commands.pop(self._finished.pop(0), None)
                if old is not None and old.idempotency_key is not None:
                    self._keys.pop((old.device_id, old.idempotency_key), None)
        return True

    async def open_commands(self, device_id: str | None = None) -> list[Command]:
        """Return copies of unfinished commands, oldest first."""
        found = [
            self._copy(c)
            for c in self._commands.values()
            if not c.done and (device_id is None or c.device_id == device_id)
        ]
        return sorted(found, key=lambda c: c.history[0][1] if c.history else 0.0)

    @staticmethod
    def _copy(command: Command) -> Command:
        return Command.from_dict(command.to_dict())
