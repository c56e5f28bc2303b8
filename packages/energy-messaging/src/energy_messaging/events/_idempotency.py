"""Process a redelivered event once: an idempotency store keyed by event id.

Delivery is at least once, so a handler may see the same event again (after a crash
before the acknowledgement, or a redelivery). :func:`idempotent` wraps a handler so
each event id is processed once per ``namespace``:

1. ``begin`` marks the id *in progress* for ``lease`` seconds (Redis ``SET NX PX``).
2. The handler runs; on success ``complete`` marks it *done* for ``ttl`` seconds, on
   failure ``abandon`` removes the mark so the redelivery runs the handler again.
3. A delivery that finds the id *done* is skipped (and acknowledged); one that finds it
   *in progress* raises :class:`EventInProgressError`, so it is retried later (if the
   first consumer crashed, its lease runs out and the retry processes the event).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

from energy_messaging.events._bus import EventHandler
from energy_messaging.events._envelope import Event
from energy_messaging.events._errors import EventInProgressError

__all__ = ["IdempotencyState", "IdempotencyStore", "InMemoryIdempotencyStore", "idempotent"]

#: Result of :meth:`IdempotencyStore.begin`.
IdempotencyState = Literal["new", "in_progress", "done"]


@runtime_checkable
class IdempotencyStore(Protocol):
    """Marks per key: absent, in progress (with a lease) or done (with a TTL)."""

    async def begin(self, key: str, *, lease: float) -> IdempotencyState:
        """Mark ``key`` in progress unless marked; return the state found (``"new"`` if it was free)."""
        ...

    async def complete(self, key: str, *, ttl: float) -> None:
        """Mark ``key`` done for ``ttl`` seconds."""
        ...

    async def abandon(self, key: str) -> None:
        """Remove the in-progress mark of ``key`` so it can be processed again."""
        ...


class InMemoryIdempotencyStore:
    """Process-local :class:`IdempotencyStore` (expired marks are pruned as it grows).

    Args:
        max_keys: Prune expired marks when more than this many are held.
    """

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._marks: dict[str, tuple[IdempotencyState, float]] = {}
        self._max_keys = max_keys

    def _prune(self, now: float) -> None:
        if len(self._marks) > self._max_keys:
            self._marks = {key: mark for key, mark in self._marks.items() if mark[1] > now}

    async def begin(self, key: str, *, lease: float) -> IdempotencyState:
        """Mark ``key`` in progress unless marked; return the state found."""
        now = time.monotonic()
        mark = self._marks.get(key)
        if mark is not None and mark[1] > now:
            return mark[0]
        self._prune(now)
        self._marks[key] = ("in_progress", now + lease)
        return "new"

    async def complete(self, key: str, *, ttl: float) -> None:
        """Mark ``key`` done for ``ttl`` seconds."""
        self._marks[key] = ("done", time.monotonic() + ttl)

    async def abandon(self, key: str) -> None:
        """Remove the in-progress mark of ``key``."""
        mark = self._marks.get(key)
        if mark is not None and mark[0] == "in_progress":
            del self._marks[key]


def idempotent(
    store: IdempotencyStore,
    *,
    namespace: str = "default",
    ttl: float = 86_400.0,
    lease: float = 60.0,
) -> Callable[[EventHandler], EventHandler]:
    """Decorate a handler so each event id is processed once per ``namespace``.

    Use one namespace per handler when several handlers share a store.

    Args:
        store: Where the marks live (Redis-backed to share them between replicas).
        namespace: Scope of the marks (e.g. the handler's name).
        ttl: How long a processed id is remembered, in seconds; keep it above the
            longest redelivery delay.
        lease: How long an in-progress mark holds, in seconds; keep it above the
            handler's longest run.

    Example:
        >>> store = InMemoryIdempotencyStore()
        >>> @idempotent(store, namespace="billing")
        ... async def on_reading(event: Event) -> None: ...
    """

    def decorate(handler: EventHandler) -> EventHandler:
        @functools.wraps(handler)
        async def wrapper(event: Event) -> None:
            key = f"{namespace}:{event.id}"
            state = await store.begin(key, lease=lease)
            if state == "done":
                return
            if state == "in_progress":
                raise EventInProgressError(details={"event_id": event.id})
            try:
                await handler(event)
            except BaseException:
                # Best effort: if this fails too, the lease expires and a retry proceeds then.
                with contextlib.suppress(Exception):
                    await store.abandon(key)
                raise
            await store.complete(key, ttl=ttl)

        return wrapper

    return decorate
