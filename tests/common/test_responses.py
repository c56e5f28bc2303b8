"""Tests for energy_common.responses: the envelope models and their constructors."""

from __future__ import annotations

import gc
import weakref
from datetime import datetime
from typing import Any

import pytest
from energy_common.context import correlation_scope
from energy_common.exceptions import (
    AuthenticationError,
    ConflictError,
    EnergyError,
    RateLimitExceededError,
    ResourceNotFoundError,
    ValidationError,
)
from energy_common.responses import (
    PROBLEM_JSON,
    APIResponse,
    ErrorResponse,
    PaginatedResponse,
    pagination_meta,
)
from pydantic import BaseModel

ENVELOPE_KEYS = {"success", "data", "error", "message", "meta", "timestamp", "request_id"}


class User(BaseModel):
    """A payload model for the generic envelope."""

    id: int
    name: str


def test_success_envelope_shape() -> None:
    """A success body has every envelope key, success true, the request id and a UTC timestamp."""
    with correlation_scope("req-1"):
        body = APIResponse.success(data={"id": 1}, message="User retrieved successfully", meta={"v": 1}).to_dict()
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is True
    assert body["data"] == {"id": 1}
    assert body["error"] is None
    assert body["message"] == "User retrieved successfully"
    assert body["meta"] == {"v": 1}
    assert body["request_id"] == "req-1"
    assert body["timestamp"].endswith("Z")
    assert datetime.fromisoformat(body["timestamp"]).utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_request_id_is_none_outside_a_request() -> None:
    """Without a correlation id the envelope says so instead of inventing one."""
    assert APIResponse.success(data=1).request_id is None


def test_generic_model_validates_payload() -> None:
    """APIResponse[User] validates the payload, as FastAPI does with a response_model."""
    body = APIResponse.success(data={"id": 1, "name": "ann"}).to_dict()
    parsed = APIResponse[User].model_validate(body)
    assert parsed.data == User(id=1, name="ann")
    with pytest.raises(ValueError, match="name"):
        APIResponse[User].model_validate({**body, "data": {"id": 1}})


def test_openapi_schema_shows_envelope_keys() -> None:
    """The JSON schema (what OpenAPI shows) uses the wire names, including 'success'."""
    for model in (APIResponse[User], PaginatedResponse[User], ErrorResponse):
        schema = model.model_json_schema(mode="serialization", by_alias=True)
        assert set(schema["properties"]) == ENVELOPE_KEYS


@pytest.mark.parametrize(
    ("page", "limit", "total", "derived"),
    [
        (1, 10, 100, (10, True, False)),
        (10, 10, 100, (10, False, True)),
        (2, 10, 15, (2, False, True)),
        (1, 10, 0, (0, False, False)),
        (3, 10, 5, (1, False, True)),
    ],
)
def test_paginated_meta(page: int, limit: int, total: int, derived: tuple[int, bool, bool]) -> None:
    """Pagination metadata (pages, has_next, has_prev) is computed from page, limit and total."""
    body = APIResponse.paginated([], page=page, limit=limit, total=total).to_dict()
    pages, has_next, has_prev = derived
    assert body["meta"] == {
        "page": page,
        "limit": limit,
        "total": total,
        "pages": pages,
        "has_next": has_next,
        "has_prev": has_prev,
    }
    assert body["success"] is True
    assert set(body) == ENVELOPE_KEYS


def test_paginated_items_are_data() -> None:
    """The items become the data list."""
    page = APIResponse.paginated([User(id=1, name="a"), User(id=2, name="b")], page=1, limit=10, total=2)
    assert page.to_dict()["data"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"page": 0, "limit": 10, "total": 1}, "page"),
        ({"page": -1, "limit": 10, "total": 1}, "page"),
        ({"page": 1, "limit": 0, "total": 1}, "limit"),
        ({"page": 1, "limit": 10, "total": -5}, "total"),
        ({"page": "1", "limit": 10, "total": 1}, "page"),
        ({"page": True, "limit": 10, "total": 1}, "page"),
        ({"page": 1, "limit": 1.5, "total": 1}, "limit"),
    ],
)
def test_paginated_rejects_bad_numbers(kwargs: dict[str, Any], field: str) -> None:
    """Bad page/limit/total raise ValidationError naming the field."""
    with pytest.raises(ValidationError) as info:
        APIResponse.paginated([], **kwargs)
    assert info.value.details["field"] == field
    with pytest.raises(ValidationError):
        pagination_meta(kwargs["page"], kwargs["limit"], kwargs["total"])


@pytest.mark.parametrize("items", ["abc", 42, None])
def test_paginated_rejects_non_sequences(items: Any) -> None:
    """Items must be a sequence (a string is not a list of items)."""
    with pytest.raises(ValidationError, match="sequence"):
        APIResponse.paginated(items, page=1, limit=10, total=1)


def test_paginated_reuses_one_model_class_across_garbage_collections() -> None:
    """Pages keep one envelope class: it is not collected and rebuilt (schema generation) between calls."""
    first = weakref.ref(type(APIResponse.paginated([1], page=1, limit=5, total=1)))
    gc.collect()
    assert first() is not None
    assert type(APIResponse.paginated([2], page=1, limit=5, total=1)) is first()


def test_paginated_rejects_more_items_than_limit() -> None:
    """A page longer than its limit is a programming error reported as ValidationError."""
    with pytest.raises(ValidationError, match="at most"):
        APIResponse.paginated([1, 2, 3], page=1, limit=2, total=3)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ErrorResponse.not_found("User", 7), 404, "RESOURCE_NOT_FOUND"),
        (ErrorResponse.validation_error("bad", {"field": "email"}), 400, "VALIDATION_ERROR"),
        (ErrorResponse.unauthorized(), 401, "AUTHENTICATION_ERROR"),
        (ErrorResponse.forbidden(), 403, "AUTHORIZATION_ERROR"),
        (ErrorResponse.conflict(), 409, "CONFLICT"),
        (ErrorResponse.rate_limited(3), 429, "RATE_LIMIT_EXCEEDED"),
        (ErrorResponse.internal(), 500, "INTERNAL_ERROR"),
    ],
)
def test_error_constructors(error: ErrorResponse, status: int, code: str) -> None:
    """Each constructor sets the status, the stable code and the envelope shape."""
    body = error.to_dict()
    assert error.status_code == status
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is False
    assert body["data"] is None
    assert body["error"]["error_code"] == code
    assert body["error"]["message"] == body["message"]
    assert "status_code" not in body


def test_not_found_names_resource_and_id() -> None:
    """The not-found message names both the resource and its id."""
    error = ErrorResponse.not_found("User", 42)
    assert error.message == "User '42' was not found."
    assert error.error.details == {"resource": "User", "resource_id": "42"}


def test_validation_error_carries_field_errors() -> None:
    """Per-field problems go into details.errors."""
    error = ErrorResponse.validation_error("Invalid input", errors=[{"loc": ["email"], "msg": "bad"}])
    assert error.error.details["errors"] == [{"loc": ["email"], "msg": "bad"}]


def test_unauthorized_asks_for_bearer() -> None:
    """A 401 carries WWW-Authenticate so clients know how to authenticate."""
    assert ErrorResponse.unauthorized().headers == {"WWW-Authenticate": "Bearer"}


@pytest.mark.parametrize(("retry_after", "header"), [(2.3, "3"), (1, "1"), (0.01, "1"), (0, "0")])
def test_rate_limited_rounds_retry_after_up(retry_after: float, header: str) -> None:
    """Retry-After is whole seconds, rounded up, so clients never retry too early."""
    assert ErrorResponse.rate_limited(retry_after).headers["Retry-After"] == header


def test_rate_limited_keeps_explicit_retry_after() -> None:
    """A Retry-After already set on the exception wins over the computed one."""
    exc = RateLimitExceededError(retry_after=9.5)
    exc.headers["retry-after"] = "60"
    assert ErrorResponse.from_exception(exc).headers == {"retry-after": "60"}


@pytest.mark.parametrize(
    "exc",
    [
        ValidationError("Invalid email format", {"field": "email"}),
        ResourceNotFoundError("Meter", "m-1"),
        ConflictError("Duplicate serial"),
        AuthenticationError(),
        EnergyError(),
    ],
)
def test_from_exception_keeps_energy_error_fields(exc: EnergyError) -> None:
    """An EnergyError keeps its status, code, message and details."""
    error = ErrorResponse.from_exception(exc)
    assert error.status_code == exc.status_code
    assert error.error.model_dump() == exc.to_dict()


def test_from_exception_hides_foreign_exceptions() -> None:
    """Any other exception becomes a generic 500 that reveals nothing of its message."""
    error = ErrorResponse.from_exception(RuntimeError("password=hunter2 at db.internal"))
    assert error.status_code == 500
    assert "hunter2" not in str(error.to_dict())
    assert "db.internal" not in str(error.to_dict())


def test_problem_details() -> None:
    """to_problem() renders RFC 9457 members plus the envelope's extensions."""
    with correlation_scope("req-9"):
        problem = ErrorResponse.not_found("User", 1).to_problem(instance="/users/1")
    assert problem["type"] == "about:blank"
    assert problem["title"] == "Not Found"
    assert problem["status"] == 404
    assert problem["detail"] == "User '1' was not found."
    assert problem["instance"] == "/users/1"
    assert problem["error_code"] == "RESOURCE_NOT_FOUND"
    assert problem["request_id"] == "req-9"
    assert PROBLEM_JSON == "application/problem+json"


def test_problem_type_base() -> None:
    """With a type base, the problem type is a URI per error code."""
    problem = ErrorResponse.conflict().to_problem(type_base="https://errors.energy.example/")
    assert problem["type"] == "https://errors.energy.example/conflict"
    assert problem["title"] == "Conflict"


def test_envelopes_are_immutable() -> None:
    """Envelopes are frozen: a handler cannot alter one after building it."""
    body = APIResponse.success(data=1)
    with pytest.raises(ValueError, match="frozen"):
        body.message = "changed"  # type: ignore[misc]


def test_public_names() -> None:
    """The public surface of energy_common.responses is pinned."""
    import energy_common.responses as module

    assert module.__all__ == [
        "PROBLEM_JSON",
        "APIResponse",
        "Envelope",
        "ErrorDetail",
        "ErrorResponse",
        "PaginatedResponse",
        "PaginationMeta",
        "SuccessEnvelope",
        "pagination_meta",
    ]
