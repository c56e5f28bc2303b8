"""Public errors of energy-messaging (see :mod:`energy_messaging._errors` for the tree)."""

from energy_messaging._errors import (
    CommandError,
    CommandExpiredError,
    CommandFailedError,
    CommandTimeoutError,
    DeviceOfflineError,
    MessageTooLargeError,
    MessagingConnectionError,
    MessagingError,
    NotConnectedError,
    PayloadEncodeError,
    PublishBufferFullError,
    PublishError,
    TopicValidationError,
)

__all__ = [
    "CommandError",
    "CommandExpiredError",
    "CommandFailedError",
    "CommandTimeoutError",
    "DeviceOfflineError",
    "MessageTooLargeError",
    "MessagingConnectionError",
    "MessagingError",
    "NotConnectedError",
    "PayloadEncodeError",
    "PublishBufferFullError",
    "PublishError",
    "TopicValidationError",
]
