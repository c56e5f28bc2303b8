"""Errors of energy-messaging, below the ``MessagingError`` umbrella of energy-common.

::

    MessagingError                      502  MESSAGING_ERROR
    ├── TopicValidationError            400  TOPIC_INVALID        (also a ValidationError)
    ├── PayloadEncodeError              400  PAYLOAD_NOT_SERIALIZABLE (also a ValidationError)
    ├── PublishError                    502  PUBLISH_FAILED
    │   └── MessageTooLargeError        413  MESSAGE_TOO_LARGE (also a ValidationError, PayloadTooLargeError)
    ├── CommandError                    502  COMMAND_ERROR
    │   ├── CommandFailedError          502  COMMAND_FAILED
    │   ├── CommandTimeoutError         504  COMMAND_TIMEOUT
    │   ├── CommandExpiredError         504  COMMAND_EXPIRED
    │   ├── CommandLimitError           429  COMMAND_LIMIT_REACHED
    │   └── CommandNotCancellableError  409  COMMAND_NOT_CANCELLABLE
    ├── DeviceOfflineError              409  DEVICE_OFFLINE
    ├── MQTTOptionsError                500  MQTT_OPTIONS_INVALID (also a ConfigurationError)
    └── MessagingConnectionError        503  MESSAGING_UNAVAILABLE
        ├── CommandStoreError           503  COMMAND_STORE_UNAVAILABLE
        ├── NotConnectedError           503  MQTT_NOT_CONNECTED
        └── PublishBufferFullError      503  PUBLISH_BUFFER_FULL

An unknown device raises :class:`energy_common.exceptions.ResourceNotFoundError`.
"""

from __future__ import annotations

from energy_common.exceptions import (
    ConfigurationError,
    MessagingConnectionError,
    MessagingError,
    PayloadTooLargeError,
    ValidationError,
)

__all__ = [
    "CommandError",
    "CommandExpiredError",
    "CommandFailedError",
    "CommandLimitError",
    "CommandNotCancellableError",
    "CommandStoreError",
    "CommandTimeoutError",
    "DeviceOfflineError",
    "MQTTOptionsError",
    "MessageTooLargeError",
    "MessagingConnectionError",
    "MessagingError",
    "NotConnectedError",
    "PayloadEncodeError",
    "PublishBufferFullError",
    "PublishError",
    "TopicValidationError",
]


class TopicValidationError(MessagingError, ValidationError):
    """A topic, topic level or topic filter is not allowed (wildcard, ``/`` or NUL in a level, empty...).

    Fix the value named in ``details`` (device ids must not contain ``+ # /`` or NUL).
    """

    error_code = "TOPIC_INVALID"
    status_code = 400
    default_message = "The MQTT topic is invalid."


class PayloadEncodeError(MessagingError, ValidationError):
    """A payload could not be serialised to JSON; pass bytes, str, a dict or a pydantic model."""

    error_code = "PAYLOAD_NOT_SERIALIZABLE"
    status_code = 400
    default_message = "The payload cannot be serialised to JSON."


class PublishError(MessagingError):
    """The broker did not accept a publish (it was refused or not acknowledged in time); retry later."""

    error_code = "PUBLISH_FAILED"
    status_code = 502
    default_message = "The message could not be published."


class MessageTooLargeError(PublishError, PayloadTooLargeError, ValidationError):
    """A publish is larger than allowed; it was refused before anything was sent.

    The limit is the smallest of ``max_payload_bytes`` (the manager's option, for the
    payload), the broker's Maximum Packet Size (MQTT 5 CONNACK, for the whole packet) and
    MQTT's own limit (268,435,455 bytes after the fixed header). ``details`` names the
    ``topic``, the ``size`` and ``limit`` in bytes and which ``limit_kind`` applied. Send
    less per message (split it, or store the blob elsewhere and publish a reference).
    """

    error_code = "MESSAGE_TOO_LARGE"
    status_code = 413
    default_message = "The message is too large to publish."


class MQTTOptionsError(MessagingError, ConfigurationError):
    """An option of ``MQTTManager``/``MQTTOptions`` is out of range; ``details["option"]`` names it."""

    error_code = "MQTT_OPTIONS_INVALID"
    status_code = 500
    default_message = "An MQTT option is invalid."


class NotConnectedError(MessagingConnectionError):
    """The MQTT manager is not started or already stopped: call ``connect()`` first."""

    error_code = "MQTT_NOT_CONNECTED"
    status_code = 503
    default_message = "The MQTT manager is not connected; call connect() first."


class PublishBufferFullError(MessagingConnectionError):
    """The broker is unreachable and the bounded publish buffer is full; nothing was dropped silently.

    Retry after the connection is back (see ``MQTTManager.state``) or raise ``max_buffered_publishes``.
    """

    error_code = "PUBLISH_BUFFER_FULL"
    status_code = 503
    default_message = "The broker is unreachable and the publish buffer is full; retry later."


class DeviceOfflineError(MessagingError):
    """The device is offline and the command was sent with ``when_offline="fail"``."""

    error_code = "DEVICE_OFFLINE"
    status_code = 409
    default_message = "The device is offline."


class CommandError(MessagingError):
    """Umbrella for command failures; ``details`` carries ``device_id``, ``command`` and ``command_id``."""

    error_code = "COMMAND_ERROR"
    status_code = 502
    default_message = "The device command failed."


class CommandFailedError(CommandError):
    """The device answered the command with an error (its ``error`` object is in ``details``)."""

    error_code = "COMMAND_FAILED"
    status_code = 502
    default_message = "The device reported that the command failed."


class CommandTimeoutError(CommandError):
    """The device did not answer within ``timeout`` seconds; it may still execute the command."""

    error_code = "COMMAND_TIMEOUT"
    status_code = 504
    default_message = "The device did not answer the command in time."


class CommandExpiredError(CommandError):
    """The device stayed offline until the command's expiry, so it was never sent."""

    error_code = "COMMAND_EXPIRED"
    status_code = 504
    default_message = "The command expired before the device came online."


class CommandLimitError(CommandError):
    """The device already has ``max_in_flight`` unfinished commands; retry once one of them finished.

    ``details`` names the ``device_id`` and the ``limit``.
    """

    error_code = "COMMAND_LIMIT_REACHED"
    status_code = 429
    default_message = "Too many commands in flight for this device; retry later."


class CommandNotCancellableError(CommandError):
    """Only a ``queued`` command can be cancelled; this one was already sent or finished.

    ``details["state"]`` is its state: look it up again to see how it ended.
    """

    error_code = "COMMAND_NOT_CANCELLABLE"
    status_code = 409
    default_message = "The command is no longer queued and cannot be cancelled."


class CommandStoreError(MessagingConnectionError):
    """The command store (Redis or the database) failed; the command's state is unknown to this call.

    Retry the request (with the same idempotency key, so it cannot create a second command).
    """

    error_code = "COMMAND_STORE_UNAVAILABLE"
    status_code = 503
    default_message = "The command store is unavailable; retry with the same idempotency key."
