"""Pick an event-bus backend from a URL, importing Redis only when asked for."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from energy_messaging.events._base import TransportEventBus
from energy_messaging.events._errors import EventBusConfigurationError
from energy_messaging.events._memory import InMemoryEventBus

__all__ = ["create_event_bus"]

_REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def create_event_bus(url: str = "memory://", **options: Any) -> TransportEventBus:
    """Create the event bus named by ``url``.

    * ``memory://`` — the in-process bus (:class:`InMemoryEventBus`);
    * ``redis://``, ``rediss://``, ``unix://`` — Redis Streams
      (:class:`~energy_messaging.events.redis_streams.RedisStreamsEventBus`, needs the
      ``redis`` extra, imported only here).

    Args:
        url: Backend URL (a Redis URL may carry credentials; it is never logged).
        **options: Keyword options of the backend class (``group``, ``min_idle``, ...).

    Raises:
        EventBusConfigurationError: Unsupported scheme or option.
        ImportError: ``redis://`` without the ``redis`` extra installed.

    Example:
        >>> bus = create_event_bus("memory://", group="billing")
        >>> type(bus).__name__
        'InMemoryEventBus'
    """
    scheme = urlsplit(url).scheme.lower()
    try:
        if scheme == "memory":
            return InMemoryEventBus(**options)
        if scheme in _REDIS_SCHEMES:
            from energy_messaging.events.redis_streams import RedisStreamsEventBus  # noqa: PLC0415 - optional extra

            return RedisStreamsEventBus(url, **options)
    except TypeError as exc:
        raise EventBusConfigurationError(f"Unsupported event bus option: {exc}") from exc
    raise EventBusConfigurationError(
        f"Unsupported event bus URL scheme {scheme!r}; use memory:// or redis://.", {"scheme": scheme}
    )
