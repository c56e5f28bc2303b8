"""Errors of the event bus, below :class:`energy_common.exceptions.MessagingError`.

::

    MessagingError                          502  MESSAGING_ERROR
    └── EventBusError                       502  EVENT_BUS_ERROR
        ├── EventBusConnectionError         503  EVENT_BUS_UNAVAILABLE  (also a MessagingConnectionError)
        ├── EventBusClosedError             503  EVENT_BUS_CLOSED
        ├── EventBusConfigurationError      500  EVENT_BUS_CONFIGURATION_ERROR
        ├── InvalidEventError               400  INVALID_EVENT
        ├── EventInProgressError            409  EVENT_IN_PROGRESS
        ├── DeadLetterNotFoundError         404  DEAD_LETTER_NOT_FOUND
        └── DeadLetterReplayError           502  DEAD_LETTER_REPLAY_FAILED
"""

from __future__ import annotations

from energy_common.exceptions import MessagingConnectionError, MessagingError

__all__ = [
    "DeadLetterNotFoundError",
    "DeadLetterReplayError",
    "EventBusClosedError",
    "EventBusConfigurationError",
    "EventBusConnectionError",
    "EventBusError",
    "EventInProgressError",
    "InvalidEventError",
]


class EventBusError(MessagingError):
    """Umbrella for event-bus failures."""

    error_code = "EVENT_BUS_ERROR"
    status_code = 502
    default_message = "The event bus failed; retry, and check the event backend if it persists."


class EventBusConnectionError(EventBusError, MessagingConnectionError):
    """The event backend (Redis) could not be reached; retry once it is back."""

    error_code = "EVENT_BUS_UNAVAILABLE"
    status_code = 503
    default_message = "The event backend is unreachable; retry later and check that Redis is running."


class EventBusClosedError(EventBusError):
    """The bus is not running: use it inside ``async with`` (or after ``await bus.start()``)."""

    error_code = "EVENT_BUS_CLOSED"
    status_code = 503
    default_message = "The event bus is not running; open it with 'async with bus:' before publishing."


class EventBusConfigurationError(EventBusError):
    """The bus was configured with an unsupported URL or option value."""

    error_code = "EVENT_BUS_CONFIGURATION_ERROR"
    status_code = 500
    default_message = "The event bus configuration is invalid."


class InvalidEventError(EventBusError):
    """An event (type, data or a received envelope) is not valid JSON CloudEvents."""

    error_code = "INVALID_EVENT"
    status_code = 400
    default_message = "The event is invalid."


class EventInProgressError(EventBusError):
    """Another consumer is processing the same event right now; it is retried later."""

    error_code = "EVENT_IN_PROGRESS"
    status_code = 409
    default_message = "The event is being processed by another consumer; it will be retried."


class DeadLetterNotFoundError(EventBusError):
    """No dead letter has this id (malformed, or purged, replayed or trimmed): list them again."""

    error_code = "DEAD_LETTER_NOT_FOUND"
    status_code = 404
    default_message = "No such dead letter; list the dead letters to find its id."


class DeadLetterReplayError(EventBusError):
    """A dead letter could not be sent back (no payload, invalid event, backend down); it is kept."""

    error_code = "DEAD_LETTER_REPLAY_FAILED"
    status_code = 502
    default_message = "The dead letter could not be replayed; it is kept, fix the cause and replay it again."
