"""The broker's count of dropped messages, followed through its ``$SYS`` topic.

A subscriber slower than its publishers makes the broker queue messages for it, and at
the queue's limit (Mosquitto: ``max_queued_messages``/``max_queued_bytes``) drop them:
the one loss no acknowledgement on our side can prevent. Mosquitto publishes its total
since it started on ``$SYS/broker/publish/messages/dropped`` (retained, every
``sys_interval`` seconds when it changed); :class:`BrokerDrops` subscribes to it and
remembers when the count last grew, for the health check and the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from energy_messaging.mqtt._manager import MQTTManager
    from energy_messaging.mqtt._message import MQTTMessage

__all__ = ["MOSQUITTO_DROPPED_TOPIC", "BrokerDrops", "parse_counter"]

logger = logging.getLogger("energy_messaging.mqtt")

#: Where Mosquitto publishes the messages it dropped (queue or in-flight limits).
MOSQUITTO_DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"


def parse_counter(payload: bytes) -> int | None:
    """Return the counter a ``$SYS`` payload holds (ASCII digits), or None if it is no counter.

    Example:
        >>> parse_counter(b"1234"), parse_counter(b"n/a")
        (1234, None)
    """
    text = payload.strip()
    if not text.isdigit() or len(text) > 20:
        return None
    return int(text)


class BrokerDrops:
    """Follow the broker's dropped-messages counter and tell when it grew.

    The first value seen is the baseline (drops before this process started are not
    ours to report); every later increase counts in :attr:`dropped` and sets
    :attr:`last_growth_at`. A broker that publishes no such topic (or refuses the
    subscription by ACL) leaves :attr:`available` False.

    Args:
        mqtt: The manager to subscribe with (before or after it connects).
        topic: The counter's topic (default: Mosquitto's).
        on_growth: Called with each increase (e.g. to count it in a metric).

    Example:
        >>> drops = BrokerDrops(MQTTManager("localhost"))  # doctest: +SKIP
        >>> await drops.start()  # doctest: +SKIP
    """

    def __init__(
        self,
        mqtt: MQTTManager,
        *,
        topic: str = MOSQUITTO_DROPPED_TOPIC,
        on_growth: Callable[[int], None] | None = None,
    ) -> None:
        self.mqtt = mqtt
        self.topic = topic
        self._on_growth = on_growth
        #: The broker's last reported total (since the broker started); None before the first.
        self.total: int | None = None
        #: Messages the broker dropped since this object saw its first value.
        self.dropped = 0
        #: Wall-clock time (``time.time()``) of the last increase; None if none seen.
        self.last_growth_at: float | None = None

    @property
    def available(self) -> bool:
        """Whether the broker published the counter at least once."""
        return self.total is not None

    async def start(self) -> None:
        """Subscribe to the counter (QoS 0, raw payload).

        Raises:
            MessagingError: If the broker refused the subscription.
        """
        await self.mqtt.subscribe(self.topic, self._on_message, qos=0, decode=False)

    def dropped_within(self, seconds: float) -> bool:
        """Whether the counter grew within the last ``seconds``."""
        return self.last_growth_at is not None and time.time() - self.last_growth_at <= seconds

    async def _on_message(self, message: MQTTMessage) -> None:
        self.observe(message.raw)

    def observe(self, payload: bytes) -> None:
        """Take one published value of the counter (ignored when it is not a counter)."""
        value = parse_counter(payload)
        if value is None:
            logger.warning("%s is not a counter: %r", self.topic, payload[:40])
            return
        previous, self.total = self.total, value
        if previous is None or value <= previous:  # the baseline, or a restarted broker
            return
        grown = value - previous
        self.dropped += grown
        self.last_growth_at = time.time()
        logger.warning(
            "the MQTT broker dropped %d messages (%d since this process started): a subscriber is "
            "slower than its publishers and its queue is full; see the broker's queue settings",
            grown,
            self.dropped,
        )
        if self._on_growth is not None:
            self._on_growth(grown)
