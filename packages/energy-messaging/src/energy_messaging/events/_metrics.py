"""The event bus's built-in metrics: what was published and consumed, and how far each group is behind.

Recorded into any :class:`~energy_messaging.mqtt.MetricsSink` (energy-monitoring's
``MetricsRegistry`` is one), named like the MQTT metrics (dotted; the sink adds its
namespace and the Prometheus suffixes):

* ``events.published`` {event_type}: events appended to their stream by this bus;
* ``events.publish.errors`` {event_type, error}: publishes that raised, by error code
  (``EVENT_BUS_UNAVAILABLE``, ``INVALID_EVENT``, ...);
* ``events.consumed`` {event_type, group, outcome}: deliveries handled by this consumer,
  ``outcome`` one of ``ok`` (acknowledged), ``retry`` (a handler raised; redelivered
  later) and ``dead_letter`` (moved to the dead-letter stream); every outcome starts at 0;
* ``events.handler`` {event_type, group}: handler run time (``_duration_seconds`` histogram);
* ``events.dead_letters`` {group, reason}: ``reason`` one of :data:`DEAD_LETTER_REASONS`
  (each from 0);
* ``events.lag`` {event_type, group} (gauge): entries of the stream not yet delivered to
  the group (Redis ``XINFO GROUPS`` ``lag``; counted when Redis cannot tell);
* ``events.pending`` {event_type, group} (gauge): entries delivered to the group and not
  acknowledged yet (in a handler, waiting for a retry, or held by a dead consumer);
* ``events.connected`` {group} (gauge): 1 while the consumer reaches its backend.

The gauges are read every second by a task the bus owns (one ``XINFO GROUPS`` per
subscribed stream on Redis), so the lag of the whole group is seen by each replica.
Label values are event types and group names, which a service declares in code: the
label sets stay few.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Literal

from energy_messaging._metrics import MetricsSink
from energy_messaging.events._bus import EventBusStats
from energy_messaging.events._errors import EventBusError
from energy_messaging.events._transport import NoGroupError, Transport

__all__ = ["DEAD_LETTER_REASONS", "SAMPLE_INTERVAL", "BusMetrics", "DeadLetterReason", "Outcome"]

logger = logging.getLogger("energy_messaging.events")

#: Why an entry was dead-lettered: no event in it, an invalid event, an event of another
#: type than its stream's, more deliveries than ``max_deliveries``, or a handler that
#: raised on the last allowed delivery.
DeadLetterReason = Literal["malformed", "invalid_event", "type_mismatch", "max_deliveries", "handler_error"]
DEAD_LETTER_REASONS: tuple[DeadLetterReason, ...] = (
    "malformed",
    "invalid_event",
    "type_mismatch",
    "max_deliveries",
    "handler_error",
)

#: What became of one delivery.
Outcome = Literal["ok", "retry", "dead_letter"]
_OUTCOMES: tuple[Outcome, ...] = ("ok", "retry", "dead_letter")

#: Seconds between two readings of the lag, pending and connected gauges.
SAMPLE_INTERVAL = 1.0


class BusMetrics:
    """The metrics of one bus (created only when the bus is given a sink).

    Args:
        sink: Where the metrics go.
        group: The bus's consumer group (a label of every consumer-side metric).
    """

    def __init__(self, sink: MetricsSink, group: str) -> None:
        self.sink = sink
        self.group = group
        self._published: dict[str, dict[str, str]] = {}
        self._consumed: dict[tuple[str, str], dict[str, str]] = {}
        self._handler: dict[str, dict[str, str]] = {}
        for reason in DEAD_LETTER_REASONS:
            sink.increment_counter("events.dead_letters", 0, {"group": group, "reason": reason})
        sink.set_gauge("events.connected", 1, {"group": group})

    def subscribed(self, event_type: str) -> None:
        """Create the consumer-side series of an event type at 0 (a ``rate()`` sees the first one)."""
        for outcome in _OUTCOMES:
            self.sink.increment_counter("events.consumed", 0, self._consumed_tags(event_type, outcome))
        tags = {"event_type": event_type, "group": self.group}
        self.sink.set_gauge("events.lag", 0, tags)
        self.sink.set_gauge("events.pending", 0, tags)

    @contextlib.contextmanager
    def publishing(self, counts: Mapping[str, int]) -> Iterator[None]:
        """Count the events of one publish call (event type -> how many): published, or failed by error code."""
        try:
            yield
        except EventBusError as exc:
            for event_type, count in counts.items():
                self.sink.increment_counter(
                    "events.publish.errors", count, {"event_type": event_type, "error": exc.error_code}
                )
            raise
        for event_type, count in counts.items():
            tags = self._published.get(event_type)
            if tags is None:
                tags = self._published[event_type] = {"event_type": event_type}
            self.sink.increment_counter("events.published", count, tags)

    def consumed(self, event_type: str, outcome: Outcome, seconds: float | None = None) -> None:
        """Count one delivery's outcome; ``seconds`` is its handlers' run time, when they ran."""
        self.sink.increment_counter("events.consumed", 1, self._consumed_tags(event_type, outcome))
        if seconds is not None:
            self.observe(event_type, seconds)

    def observe(self, event_type: str, seconds: float) -> None:
        """Record one run of an event type's handlers."""
        tags = self._handler.get(event_type)
        if tags is None:
            tags = self._handler[event_type] = {"event_type": event_type, "group": self.group}
        self.sink.observe_duration("events.handler", seconds, tags)

    def dead_lettered(self, reason: DeadLetterReason) -> None:
        """Count one entry moved to the dead-letter stream."""
        self.sink.increment_counter("events.dead_letters", 1, {"group": self.group, "reason": reason})

    def _consumed_tags(self, event_type: str, outcome: Outcome) -> dict[str, str]:
        key = (event_type, outcome)
        tags = self._consumed.get(key)
        if tags is None:
            tags = self._consumed[key] = {"event_type": event_type, "group": self.group, "outcome": outcome}
        return tags

    async def sample(self, transport: Transport, streams: Mapping[str, str], stats: EventBusStats) -> None:
        """Read the group's lag and pending count of every subscribed stream into the gauges.

        A stream whose group does not exist yet (the consumer creates it) or a backend
        that cannot be reached leaves the gauges as they were; ``events.connected`` says why.
        """
        self.sink.set_gauge("events.connected", 1 if stats.connected else 0, {"group": self.group})
        for stream, event_type in list(streams.items()):
            try:
                state = await transport.group_state(stream, self.group)
            except (NoGroupError, EventBusError):
                continue
            tags = {"event_type": event_type, "group": self.group}
            self.sink.set_gauge("events.lag", state.lag, tags)
            self.sink.set_gauge("events.pending", state.pending, tags)

    async def run(
        self,
        transport: Transport,
        streams: Mapping[str, str],
        stats: EventBusStats,
        *,
        interval: float = SAMPLE_INTERVAL,
    ) -> None:
        """Sample every ``interval`` seconds until cancelled (a failing sample is logged, never fatal)."""
        while True:
            try:
                await self.sample(transport, streams, stats)
            except Exception:
                logger.exception("Sampling the event bus metrics failed; retrying")
            await asyncio.sleep(interval)
