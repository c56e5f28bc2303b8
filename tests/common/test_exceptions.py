"""Tests for energy_common.exceptions: codes, statuses, messages and the seed examples."""

from __future__ import annotations

import pytest
from energy_common import exceptions as exc_module
from energy_common.exceptions import (
    AuthenticationError,
    AuthorizationError,
    CacheConnectionError,
    CacheError,
    ConfigurationError,
    ConflictError,
    DatabaseConnectionError,
    DatabaseError,
    EnergyError,
    ExternalServiceError,
    MessagingConnectionError,
    MessagingError,
    OutOfRangeError,
    PayloadTooLargeError,
    RateLimitExceededError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ValidationError,
)

TABLE = [
    (EnergyError, 500, "INTERNAL_ERROR"),
    (ValidationError, 400, "VALIDATION_ERROR"),
    (OutOfRangeError, 422, "VALUE_OUT_OF_RANGE"),
    (AuthenticationError, 401, "AUTHENTICATION_ERROR"),
    (AuthorizationError, 403, "AUTHORIZATION_ERROR"),
    (ResourceNotFoundError, 404, "RESOURCE_NOT_FOUND"),
    (ConflictError, 409, "CONFLICT"),
    (PayloadTooLargeError, 413, "PAYLOAD_TOO_LARGE"),
    (RateLimitExceededError, 429, "RATE_LIMIT_EXCEEDED"),
    (ConfigurationError, 500, "CONFIGURATION_ERROR"),
    (ExternalServiceError, 502, "EXTERNAL_SERVICE_ERROR"),
    (ServiceUnavailableError, 503, "SERVICE_UNAVAILABLE"),
    (DatabaseError, 500, "DATABASE_ERROR"),
    (DatabaseConnectionError, 503, "DATABASE_UNAVAILABLE"),
    (CacheError, 500, "CACHE_ERROR"),
    (CacheConnectionError, 503, "CACHE_UNAVAILABLE"),
    (MessagingError, 502, "MESSAGING_ERROR"),
    (MessagingConnectionError, 503, "MESSAGING_UNAVAILABLE"),
]


@pytest.mark.parametrize(("cls", "status", "code"), TABLE)
def test_codes_and_statuses(cls: type[EnergyError], status: int, code: str) -> None:
    """Each class carries its documented HTTP status and stable error code."""
    assert cls.status_code == status
    assert cls.error_code == code
    assert issubclass(cls, EnergyError)


def test_every_public_class_is_in_the_table() -> None:
    """No exception class is exported without a pinned code and status."""
    assert {cls.__name__ for cls, _, _ in TABLE} == set(exc_module.__all__)


def test_error_codes_are_unique() -> None:
    """Two classes never share an error code, so clients can switch on it."""
    codes = [code for _, _, code in TABLE]
    assert len(codes) == len(set(codes))


def test_seed_validation_example() -> None:
    """The seed README's ValidationError example works as written."""
    with pytest.raises(ValidationError) as exc_info:
        raise ValidationError("Invalid data", {"field": "email"})
    assert exc_info.value.error_code == "VALIDATION_ERROR"
    assert exc_info.value.status_code == 400
    assert exc_info.value.to_dict() == {
        "error_code": "VALIDATION_ERROR",
        "message": "Invalid data",
        "details": {"field": "email"},
    }


def test_not_found_names_resource_and_id() -> None:
    """ResourceNotFoundError's message names both the resource and its id."""
    err = ResourceNotFoundError("User", 123)
    assert str(err) == "User '123' was not found."
    assert err.details == {"resource": "User", "resource_id": "123"}
    assert ResourceNotFoundError("Device").message == "Device was not found."


def test_rate_limit_carries_retry_after() -> None:
    """RateLimitExceededError exposes retry_after as attribute and in details."""
    err = RateLimitExceededError(retry_after=12.5)
    assert err.retry_after == 12.5
    assert err.details["retry_after"] == 12.5
    assert "12.5" in err.message


def test_default_message_and_details_copy() -> None:
    """A missing message falls back to the class default; details are copied, not shared."""
    details = {"a": 1}
    err = ConflictError(details=details)
    details["a"] = 2
    assert err.message == ConflictError.default_message
    assert err.details == {"a": 1}
    assert "ConflictError" in repr(err)
