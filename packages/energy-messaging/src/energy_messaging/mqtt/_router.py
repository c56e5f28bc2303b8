"""Subscriptions and routing of an incoming topic to its handlers.

MQTT 5 subscription identifiers are an optimisation here, never the only way a message
finds its handler. Each broker filter gets an identifier derived from the filter text
(:func:`filter_identifier`), so it is the same in every process and release; the broker
names it in each PUBLISH and the router finds the handlers with one dict lookup. An
identifier the router does not know (a persistent session queued the message for a
filter this process did not register, or under an older identifier scheme), or one
whose filter does not match the topic, falls back to matching the topic against every
filter. A message no filter matches has no handler: the inbound path dead-letters it.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from energy_messaging._errors import TopicValidationError
from energy_messaging._topics import TopicPattern
from energy_messaging.mqtt._message import MQTTMessage

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["BrokerFilter", "Handler", "Router", "Subscription", "filter_identifier"]

#: A message handler: an async function taking the message.
Handler = Callable[[MQTTMessage], Awaitable[Any]]

_CACHE_LIMIT = 10_000
_MAX_IDENTIFIER = 268_435_455  # MQTT 5: a variable byte integer of at most four bytes


def filter_identifier(mqtt_filter: str, attempt: int = 0) -> int:
    """Return the subscription identifier of a filter: stable, from 1 to 268,435,455.

    ``attempt`` > 0 gives the alternatives used when two filters of one router collide.
    """
    data = mqtt_filter.encode("utf-8", "surrogatepass")
    if attempt:
        data += b"\x00" + str(attempt).encode()
    return zlib.crc32(data) % _MAX_IDENTIFIER + 1


class Subscription:
    """One handler registered for one filter (returned by ``MQTTManager.subscribe``).

    Attributes:
        pattern: The compiled filter (``pattern.mqtt_filter`` is what the broker sees).
        handler: The async handler.
        qos: The requested maximum QoS.
        decode: Whether the payload is decoded as JSON before the handler sees it.
        model: Optional pydantic model the decoded payload is validated against.
    """

    __slots__ = ("decode", "handler", "model", "pattern", "qos")

    def __init__(
        self,
        pattern: TopicPattern,
        handler: Handler,
        qos: int,
        decode: bool = True,
        model: type[BaseModel] | None = None,
    ) -> None:
        self.pattern = pattern
        self.handler = handler
        self.qos = qos
        self.decode = decode
        self.model = model

    def __repr__(self) -> str:
        return (
            f"Subscription(pattern={self.pattern!r}, handler={self.handler!r}, qos={self.qos}, "
            f"decode={self.decode}, model={self.model!r})"
        )


#: ``(subscription, params)`` for each handler of a message.
Routes = tuple[tuple[Subscription, dict[str, str]], ...]


class BrokerFilter:
    """One filter as subscribed at the broker; several handlers may share it."""

    __slots__ = ("identifier", "mqtt_filter", "subscriptions")

    def __init__(self, mqtt_filter: str, identifier: int) -> None:
        self.mqtt_filter = mqtt_filter
        self.identifier = identifier
        self.subscriptions: list[Subscription] = []

    @property
    def qos(self) -> int:
        """Highest QoS any of its handlers asked for."""
        return max(sub.qos for sub in self.subscriptions)


class Router:
    """Map topics to subscriptions: by MQTT 5 subscription identifier, else by matching the topic.

    ``version`` grows with every change, and ``on_change`` (if set) is called after it,
    so a message held for want of a handler can be routed again.
    """

    def __init__(self) -> None:
        self.filters: dict[str, BrokerFilter] = {}
        self._by_id: dict[int, BrokerFilter] = {}
        self._cache: dict[str, Routes] = {}
        # MQTT 5: routes by (topic, subscription identifiers the broker named); () = none found.
        self._id_cache: dict[tuple[str, tuple[int, ...]], Routes] = {}
        self.version = 0
        self.on_change: Callable[[], None] | None = None

    def add(self, sub: Subscription) -> tuple[BrokerFilter, bool]:
        """Add a subscription; return its broker filter and whether the filter is new (or its QoS rose)."""
        if sub.qos not in (0, 1, 2):
            raise TopicValidationError("qos must be 0, 1 or 2.", {"qos": sub.qos})
        key = sub.pattern.mqtt_filter
        entry = self.filters.get(key)
        changed = entry is None or sub.qos > entry.qos
        if entry is None:
            attempt = 0
            while (identifier := filter_identifier(key, attempt)) in self._by_id:
                attempt += 1
            entry = BrokerFilter(key, identifier)
            self.filters[key] = entry
            self._by_id[identifier] = entry
        entry.subscriptions.append(sub)
        self._changed()
        return entry, changed

    def remove(self, sub: Subscription) -> BrokerFilter | None:
        """Remove a subscription; return its broker filter if no handler is left on it."""
        entry = self.filters.get(sub.pattern.mqtt_filter)
        if entry is None or sub not in entry.subscriptions:
            return None
        entry.subscriptions.remove(sub)
        self._changed()
        if entry.subscriptions:
            return None
        del self.filters[entry.mqtt_filter]
        del self._by_id[entry.identifier]
        return entry

    def _changed(self) -> None:
        self._cache.clear()
        self._id_cache.clear()
        self.version += 1
        if self.on_change is not None:
            self.on_change()

    def routes(self, topic: str, identifiers: list[int] | None) -> Routes:
        """Return ``(subscription, params)`` for every handler the message is for (empty: no handler).

        With MQTT 5 subscription identifiers only the filters the broker named are
        considered, so overlapping filters do not deliver one copy twice; when none of
        them is known here with a filter matching the topic, the topic is matched
        against every filter.
        """
        if identifiers:
            key = (topic, tuple(identifiers))
            named = self._id_cache.get(key)
            if named is None:
                named = self._named_routes(topic, identifiers)
                if len(self._id_cache) >= _CACHE_LIMIT:
                    self._id_cache.clear()
                self._id_cache[key] = named
            if named:
                return named
        cached = self._cache.get(topic)
        if cached is None:
            cached = tuple(
                (sub, params)
                for entry in self.filters.values()
                for sub in entry.subscriptions
                if (params := sub.pattern.match(topic)) is not None
            )
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[topic] = cached
        return cached

    def _named_routes(self, topic: str, identifiers: list[int]) -> Routes:
        found: list[tuple[Subscription, dict[str, str]]] = []
        by_id = self._by_id
        for identifier in identifiers:
            entry = by_id.get(identifier)
            if entry is None:
                continue
            for sub in entry.subscriptions:
                params = sub.pattern.match(topic)
                if params is not None:
                    found.append((sub, params))
        return tuple(found)
