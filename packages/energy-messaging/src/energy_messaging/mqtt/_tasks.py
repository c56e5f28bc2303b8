"""Owned background tasks and the status they report into: no task dies silently.

Every task the manager starts goes through :meth:`Tasks.spawn`: it has a name, the
manager holds it until it ends, :meth:`Tasks.cancel_all` cancels it on exit, and a
failure (any exception but cancellation) is logged with the task's name and written to
:attr:`Status.last_error`, which ``MQTTManager.state`` reports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["Status", "Tasks"]

logger = logging.getLogger("energy_messaging.mqtt")


class Status:
    """Connection counters and the last error, shared by the session and the tasks (read by ``state``)."""

    __slots__ = ("connections", "last_connected_at", "last_error", "reconnects", "session_present")

    def __init__(self) -> None:
        self.connections = 0
        self.reconnects = 0
        self.last_connected_at: float | None = None
        self.last_error: str | None = None
        self.session_present = False

    def fail(self, what: str, exc: BaseException | None = None) -> None:
        """Record an error: ``"<what>: <ExceptionType>: <message>"`` (or just ``what``)."""
        if exc is None:
            self.last_error = what
        else:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.last_error = f"{what}: {detail}"


class Tasks:
    """A set of named tasks owned by one manager.

    Args:
        status: Where failures are recorded.
        prefix: Prefix of every task name (e.g. ``energy-mqtt-<client id>``).
    """

    def __init__(self, status: Status, prefix: str) -> None:
        self._status = status
        self.prefix = prefix
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def names(self) -> list[str]:
        """Names of the running tasks (sorted)."""
        return sorted(task.get_name() for task in self._tasks)

    def spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        name: str,
        *,
        on_exit: Callable[[asyncio.Task[Any]], None] | None = None,
    ) -> asyncio.Task[Any]:
        """Start ``coro`` as the task ``<prefix>-<name>``; ``on_exit`` runs after it ended, however it ended."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.prefix}-{name}")
        self._tasks.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._tasks.discard(finished)
            if not finished.cancelled():
                exc = finished.exception()
                if exc is not None:
                    logger.error("MQTT task %s failed", finished.get_name(), exc_info=exc)
                    self._status.fail(f"task {finished.get_name()} failed", exc)
            if on_exit is not None:
                on_exit(finished)

        task.add_done_callback(done)
        return task

    async def cancel_all(self, *, keep: Callable[[asyncio.Task[Any]], bool] | None = None) -> None:
        """Cancel every task (except those ``keep`` selects) and wait until they ended."""
        tasks = [task for task in self._tasks if keep is None or not keep(task)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
