"""The response envelope as pydantic generic models.

Every body a service sends has the same keys::

    {
        "success": true,
        "data": {...},
        "error": null,
        "message": "...",
        "meta": null,
        "timestamp": "2026-01-01T12:00:00Z",
        "request_id": "req-1",
    }

``success`` is false for errors, ``data`` is null and ``error`` holds
``{"error_code", "message", "details"}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from energy_common.context import get_correlation_id
from energy_common.exceptions import ValidationError

__all__ = ["Envelope", "ErrorDetail", "PaginatedResponse", "PaginationMeta", "SuccessEnvelope", "pagination_meta"]

DataT = TypeVar("DataT")
ItemT = TypeVar("ItemT")


def _utc_now() -> datetime:
    return datetime.now(UTC)


_SUCCESS_DOC = "Always true here; false in error envelopes."
_TIMESTAMP_DOC = "When the response was built (UTC, ISO 8601)."
_REQUEST_ID_DOC = "Correlation id of the request (also sent as X-Request-ID)."


class Envelope(BaseModel):
    """Base of every envelope: keys ``success``, ``data``, ``error``, ``message``, ``meta``,
    ``timestamp`` and ``request_id``.

    The ``success`` key is the ``is_success`` attribute (``APIResponse.success`` is a
    constructor); bodies are serialized by alias, which FastAPI does by default.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    def to_dict(self) -> dict[str, Any]:
        """Return the envelope as a JSON-ready dict (datetimes as ISO 8601 strings)."""
        return self.model_dump(mode="json", by_alias=True)


class SuccessEnvelope(Envelope, Generic[DataT]):
    """A success envelope: ``success`` is true, ``error`` null."""

    is_success: Literal[True] = Field(default=True, alias="success", description=_SUCCESS_DOC)
    data: DataT | None = None
    error: None = None
    message: str | None = None
    meta: dict[str, Any] | None = None
    timestamp: datetime = Field(default_factory=_utc_now, description=_TIMESTAMP_DOC)
    request_id: str | None = Field(default_factory=get_correlation_id, description=_REQUEST_ID_DOC)


class PaginationMeta(BaseModel):
    """Pagination metadata of a page of items."""

    model_config = ConfigDict(frozen=True)

    page: int = Field(ge=1, description="1-based page number.")
    limit: int = Field(ge=1, description="Items per page.")
    total: int = Field(ge=0, description="Items across all pages.")
    pages: int = Field(ge=0, description="Number of pages.")
    has_next: bool
    has_prev: bool


def pagination_meta(page: int, limit: int, total: int) -> PaginationMeta:
    """Compute the pagination metadata, validating the inputs.

    Raises:
        ValidationError: ``page`` or ``limit`` is below 1, or ``total`` is negative.

    Example:
        >>> pagination_meta(2, 10, 25).pages
        3
    """
    for name, value, minimum in (("page", page, 1), ("limit", limit, 1), ("total", total, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValidationError(
                f"'{name}' must be an integer >= {minimum}, got {value!r}.",
                {"field": name, "minimum": minimum},
            )
    pages = math.ceil(total / limit) if total else 0
    return PaginationMeta(page=page, limit=limit, total=total, pages=pages, has_next=page < pages, has_prev=page > 1)


class PaginatedResponse(Envelope, Generic[ItemT]):
    """A page of items: ``data`` is the list and ``meta`` the :class:`PaginationMeta`."""

    is_success: Literal[True] = Field(default=True, alias="success", description=_SUCCESS_DOC)
    data: list[ItemT]
    error: None = None
    message: str | None = None
    meta: PaginationMeta
    timestamp: datetime = Field(default_factory=_utc_now, description=_TIMESTAMP_DOC)
    request_id: str | None = Field(default_factory=get_correlation_id, description=_REQUEST_ID_DOC)


class ErrorDetail(BaseModel):
    """The ``error`` member of an error envelope (same keys as ``EnergyError.to_dict()``)."""

    model_config = ConfigDict(frozen=True)

    error_code: str = Field(description="Stable machine-readable code, e.g. RESOURCE_NOT_FOUND.")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def build(cls, error_code: str, message: str, details: Mapping[str, Any] | None = None) -> ErrorDetail:
        """Build the detail from its parts."""
        return cls(error_code=error_code, message=message, details=dict(details or {}))


def _as_list(items: Sequence[Any]) -> list[Any]:
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise ValidationError(f"'items' must be a sequence of items, got {type(items).__name__}.", {"field": "items"})
    return list(items)
