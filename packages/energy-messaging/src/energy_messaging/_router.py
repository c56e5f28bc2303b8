"""Subscriptions and routing of an incoming topic to its handlers."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from energy_messaging._errors import TopicValidationError
from energy_messaging._message import MQTTMessage
from energy_messaging._topics import TopicPattern

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["Handler", "Router", "Subscription"]

#: A message handler: an async function taking the message.
Handler = Callable[[MQTTMessage], Awaitable[Any]]

_CACHE_LIMIT = 10_000


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
    """Map topics to subscriptions, by MQTT 5 subscription identifier or by matching."""

    def __init__(self) -> None:
        self.filters: dict[str, BrokerFilter] = {}
        self._by_id: dict[int, BrokerFilter] = {}
        self._ids = itertools.count(1)
        self._cache: dict[str, tuple[tuple[Subscription, dict[str, str]], ...]] = {}

    def add(self, sub: Subscription) -> tuple[BrokerFilter, bool]:
        """Add a subscription; return its broker filter and whether the filter is new (or its QoS rose)."""
        if sub.qos not in (0, 1, 2):
            raise TopicValidationError("qos must be 0, 1 or 2.", {"qos": sub.qos})
        key = sub.pattern.mqtt_filter
        entry = self.filters.get(key)
        changed = entry is None or sub.qos > entry.qos
        if entry is None:
            entry = BrokerFilter(key, next(self._ids))
            self.filters[key] = entry
            self._by_id[entry.identifier] = entry
        entry.subscriptions.append(sub)
        self._cache.clear()
        return entry, changed

    def remove(self, sub: Subscription) -> BrokerFilter | None:
        """Remove a subscription; return its broker filter if no handler is left on it."""
        entry = self.filters.get(sub.pattern.mqtt_filter)
        if entry is None or sub not in entry.subscriptions:
            return None
        entry.subscriptions.remove(sub)
        self._cache.clear()
        if entry.subscriptions:
            return None
        del self.filters[entry.mqtt_filter]
        del self._by_id[entry.identifier]
        return entry

    def routes(self, topic: str, identifiers: list[int] | None) -> tuple[tuple[Subscription, dict[str, str]], ...]:
        """Return ``(subscription, params)`` for every handler the message is for.

        With MQTT 5 subscription identifiers only the subscriptions the broker named are
        considered, so overlapping filters do not deliver one copy twice.
        """
        if identifiers:
            found: list[tuple[Subscription, dict[str, str]]] = []
            for identifier in identifiers:
                entry = self._by_id.get(identifier)
                if entry is None:
                    continue
                for sub in entry.subscriptions:
                    params = sub.pattern.match(topic)
                    if params is not None:
                        found.append((sub, params))
            return tuple(found)
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
