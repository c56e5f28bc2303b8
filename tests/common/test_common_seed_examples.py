"""The seed README's exception, response, logging and testing examples run as written.

The snippets below are copied verbatim from the seed ``libs/README.md`` (minus trailing
whitespace); only the import mapping of ARCHITECTURE.md (``libs.common.<m>`` → ``energy_common.<m>``,
``infrastructure.logging`` → ``energy_common.logging``) is applied before running them.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from energy_common.exceptions import ResourceNotFoundError, ValidationError
from energy_common.logging import EnergyLogHandler, capture_logs
from energy_common.responses import ErrorResponse, PaginatedResponse

MAPPING = (("libs.common.", "energy_common."), ("infrastructure.logging", "energy_common.logging"))

EXCEPTIONS = """
from libs.common.exceptions import ValidationError, ResourceNotFoundError

# Raise standardized exceptions
raise ValidationError("Invalid email format", {"field": "email"})
raise ResourceNotFoundError("User", user_id)
"""

RESPONSES = """
from libs.common.responses import APIResponse, ErrorResponse

# Success response
return APIResponse.success(data=user_data, message="User retrieved successfully")

# Error response
return ErrorResponse.not_found("User", user_id)

# Paginated response
return APIResponse.paginated(users, page=1, limit=10, total=100)
"""

LOGGING = """
from infrastructure.logging import setup_logging, ServiceLogger

# Setup logging for service
setup_logging("my-service", log_level="INFO")

# Use service logger
logger = ServiceLogger("my-service")
logger.log_api_call("GET", "/users", 200, 0.145)
logger.log_database_operation("SELECT", "users", 0.023)
"""

TESTING = """
# Test with shared utilities
from libs.common.exceptions import ValidationError
import pytest

def test_validation_error():
    with pytest.raises(ValidationError) as exc_info:
        raise ValidationError("Invalid data", {"field": "email"})

    assert exc_info.value.error_code == "VALIDATION_ERROR"
    assert exc_info.value.status_code == 400
"""


def mapped(snippet: str) -> str:
    """Apply the documented import mapping, nothing else."""
    for old, new in MAPPING:
        snippet = snippet.replace(old, new)
    return snippet


def statements(snippet: str) -> list[str]:
    """The non-comment, non-blank lines of a snippet."""
    return [line for line in mapped(snippet).splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    """Undo the example's setup_logging."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_exception_example() -> None:
    """Each raise in the exceptions example raises the documented exception."""
    imports, *raises = statements(EXCEPTIONS)
    namespace: dict[str, Any] = {"user_id": 123}
    exec(imports, namespace)  # noqa: S102 - running the documented example is the point
    expected = [ValidationError, ResourceNotFoundError]
    for line, exc_type in zip(raises, expected, strict=True):
        with pytest.raises(exc_type):
            exec(line, namespace)  # noqa: S102


def test_responses_example() -> None:
    """Each return in the responses example builds the documented envelope."""
    imports, *returns = statements(RESPONSES)
    namespace: dict[str, Any] = {"user_data": {"id": 123}, "user_id": 123, "users": [{"id": i} for i in range(10)]}
    exec(imports, namespace)  # noqa: S102
    results = []
    for line in returns:
        exec(f"def _example():\n{textwrap.indent(line, '    ')}", namespace)  # noqa: S102
        results.append(namespace["_example"]())
    success, not_found, page = results
    assert success.to_dict()["data"] == {"id": 123}
    assert success.message == "User retrieved successfully"
    assert isinstance(not_found, ErrorResponse)
    assert not_found.status_code == 404
    assert isinstance(page, PaginatedResponse)
    assert page.meta.pages == 10


def test_logging_example() -> None:
    """The logging example configures JSON logging and writes the two documented lines."""
    with capture_logs() as logs:
        exec(mapped(LOGGING), {})  # noqa: S102
    assert [line["message"] for line in logs] == ["GET /users 200 145.0 ms", "SELECT users 23.0 ms"]
    assert all(line["service"] == "my-service" for line in logs)
    assert sum(isinstance(h, EnergyLogHandler) for h in logging.getLogger().handlers) == 1


def test_testing_example() -> None:
    """The README's own test example passes."""
    namespace: dict[str, Any] = {}
    exec(mapped(TESTING), namespace)  # noqa: S102
    namespace["test_validation_error"]()
