"""Dead letters: count, log, hand to the hook and publish to the dead-letter topic, before the ack.

A message the manager cannot hand to a handler (no handler, undecodable, invalid, its
handler raised) is acknowledged only after :meth:`DeadLetters.send` returned: it is
counted (per reason), logged, given to the hook and, with a dead-letter topic, accepted
by the broker. ``no_handler`` letters are logged once per filter (or, without one, per
stale subscription identifier or topic), not once per message.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from energy_messaging.mqtt._message import DeadLetter
    from energy_messaging.mqtt._observe import Observer
    from energy_messaging.mqtt._options import DeadLetterHook
    from energy_messaging.mqtt._tasks import Tasks

__all__ = ["DeadLetters", "PublishFunction"]

logger = logging.getLogger("energy_messaging.mqtt")

#: ``await publish(topic, payload)``: publish a JSON value at QoS 1 and wait for the broker's ack.
PublishFunction = Callable[[str, dict[str, Any]], Awaitable[None]]

_LOGGED_KEYS_LIMIT = 1_000  # distinct no_handler keys logged one by one; after that one line per 1,000


class DeadLetters:
    """Where messages without a usable handler go.

    Args:
        hook: Called with each letter (sync or async); its errors are logged.
        topic: Topic the letters are published to as JSON, or None.
        publish: How to publish to ``topic``.
        tasks: Owner of the tasks :meth:`record` starts.
    """

    def __init__(self, hook: DeadLetterHook | None, topic: str | None, publish: PublishFunction, tasks: Tasks) -> None:
        self._hook = hook
        self._topic = topic
        self._publish = publish
        self._tasks = tasks
        self.count = 0
        self.by_reason: dict[str, int] = {}
        self._logged: set[object] = set()
        #: Spans and metrics of each letter (the manager's), if any.
        self.observer: Observer | None = None

    async def send(self, letter: DeadLetter) -> None:
        """Count and log the letter, then wait for the hook and the dead-letter topic; never raises."""
        self._count_and_log(letter)
        await self._deliver(letter)

    def record(self, letter: DeadLetter) -> None:
        """Like :meth:`send`, for callers that cannot wait: the delivery runs in an owned task."""
        self._count_and_log(letter)
        if self._hook is not None or self._target(letter) is not None:
            self._tasks.spawn(self._deliver(letter), "dead-letter")

    def _count_and_log(self, letter: DeadLetter) -> None:
        self.count += 1
        if self.observer is not None:
            self.observer.dead_letter(letter)
        self.by_reason[letter.reason] = self.by_reason.get(letter.reason, 0) + 1
        if letter.reason != "no_handler":
            logger.warning("MQTT dead letter on %s: %s (%s)", letter.topic, letter.reason, letter.detail)
            return
        key = letter.filter or letter.extra.get("subscription_identifiers") or letter.topic
        key = tuple(key) if isinstance(key, list) else key
        if key in self._logged:
            return
        if len(self._logged) < _LOGGED_KEYS_LIMIT:
            self._logged.add(key)
            logger.warning(
                "MQTT message on %s has no handler (%s); dead-lettered and acknowledged. Further messages "
                "like it are counted in state.dead_letter_reasons['no_handler'] without a log line.",
                letter.topic,
                letter.detail,
            )
        elif self.by_reason["no_handler"] % 1_000 == 0:
            logger.warning("MQTT: %d messages without a handler so far", self.by_reason["no_handler"])

    def _target(self, letter: DeadLetter) -> str | None:
        # A message that failed on the dead-letter topic itself is not published there again (no loop).
        return None if letter.topic == self._topic else self._topic

    async def _deliver(self, letter: DeadLetter) -> None:
        if self._hook is not None:
            try:
                result = self._hook(letter)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("MQTT dead-letter hook failed")
        topic = self._target(letter)
        if topic is not None:
            try:
                await self._publish(topic, letter.to_dict())
            except Exception:
                logger.exception("MQTT dead letter could not be published to %s", topic)
