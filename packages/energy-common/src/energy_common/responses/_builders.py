"""``APIResponse`` and ``ErrorResponse``: the constructors services call."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from http import HTTPStatus
from typing import Any, Literal

from pydantic import Field, PrivateAttr

from energy_common.context import get_correlation_id
from energy_common.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    EnergyError,
    RateLimitExceededError,
    ResourceNotFoundError,
    ValidationError,
)
from energy_common.responses._models import (
    _REQUEST_ID_DOC,
    _TIMESTAMP_DOC,
    DataT,
    Envelope,
    ErrorDetail,
    ItemT,
    PaginatedResponse,
    SuccessEnvelope,
    _as_list,
    _utc_now,
    pagination_meta,
)

__all__ = ["PROBLEM_JSON", "APIResponse", "ErrorResponse"]

#: Media type of RFC 9457 problem details.
PROBLEM_JSON = "application/problem+json"

_INTERNAL_MESSAGE = "An internal error occurred. Quote the request id when reporting it."

# Held here: pydantic caches parametrised generics only weakly, so without a strong
# reference ``PaginatedResponse[Any]`` is garbage-collected between calls and rebuilt
# (schema generation, milliseconds) on the next page a service serves.
_ANY_PAGE = PaginatedResponse[Any]


class APIResponse(SuccessEnvelope[DataT]):
    """The success envelope; use ``APIResponse[Model]`` as a FastAPI ``response_model``.

    Example:
        >>> body = APIResponse.success(data={"id": 1}, message="User retrieved successfully")
        >>> body.to_dict()["success"], body.to_dict()["data"]
        (True, {'id': 1})
    """

    @classmethod
    def success(
        cls,
        data: DataT | None = None,
        message: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> APIResponse[DataT]:
        """Build a success envelope around ``data``.

        Args:
            data: The payload (a pydantic model, dict, list or scalar).
            message: Optional human-readable message.
            meta: Optional metadata (counts, links).
        """
        return cls(data=data, message=message, meta=dict(meta) if meta is not None else None)

    @classmethod
    def paginated(
        cls,
        items: Sequence[ItemT],
        *,
        page: int,
        limit: int,
        total: int,
        message: str | None = None,
    ) -> PaginatedResponse[ItemT]:
        """Build a page: ``data`` is ``items``, ``meta`` has page, limit, total, pages, has_next, has_prev.

        Raises:
            ValidationError: ``page``/``limit`` below 1, ``total`` negative, ``items`` not a
                sequence or longer than ``limit``.

        Example:
            >>> page = APIResponse.paginated(["a", "b"], page=1, limit=10, total=100)
            >>> page.meta.pages, page.meta.has_next
            (10, True)
        """
        meta = pagination_meta(page, limit, total)
        listed = _as_list(items)
        if len(listed) > limit:
            raise ValidationError(
                f"A page holds at most 'limit'={limit} items, got {len(listed)}.", {"field": "items", "limit": limit}
            )
        return _ANY_PAGE(data=listed, meta=meta, message=message)


class ErrorResponse(Envelope):
    """The error envelope; ``status_code`` (not serialized) is the HTTP status to send.

    Example:
        >>> err = ErrorResponse.not_found("User", 42)
        >>> err.status_code, err.error.error_code, err.message
        (404, 'RESOURCE_NOT_FOUND', "User '42' was not found.")
    """

    is_success: Literal[False] = Field(default=False, alias="success", description="Always false for errors.")
    data: None = None
    error: ErrorDetail
    message: str | None = None
    meta: dict[str, Any] | None = None
    timestamp: datetime = Field(default_factory=_utc_now, description=_TIMESTAMP_DOC)
    request_id: str | None = Field(default_factory=get_correlation_id, description=_REQUEST_ID_DOC)
    _status_code: int = PrivateAttr(default=500)
    _headers: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def status_code(self) -> int:
        """HTTP status the error is sent with."""
        return self._status_code

    @property
    def headers(self) -> dict[str, str]:
        """Extra HTTP headers to send with the error (e.g. ``Retry-After``)."""
        return dict(self._headers)

    @classmethod
    def build(
        cls,
        status_code: int,
        error_code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> ErrorResponse:
        """Build an error envelope from its parts."""
        response = cls(error=ErrorDetail.build(error_code, message, details), message=message)
        response._status_code = int(status_code)
        response._headers = dict(headers or {})
        return response

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorResponse:
        """Build the envelope for any exception.

        An :class:`~energy_common.exceptions.EnergyError` keeps its status, code, message,
        details and headers; a 429 gets ``Retry-After`` (whole seconds, rounded up) from
        ``retry_after``. Any other exception becomes a generic 500 that reveals nothing
        of its message.
        """
        if not isinstance(exc, EnergyError):
            return cls.internal()
        headers = dict(exc.headers)
        retry_after = getattr(exc, "retry_after", None)
        has_retry_after = any(name.lower() == "retry-after" for name in headers)
        if isinstance(exc, RateLimitExceededError) and retry_after is not None and not has_retry_after:
            headers["Retry-After"] = str(max(0, math.ceil(retry_after)))
        return cls.build(exc.status_code, exc.error_code, exc.message, exc.details, headers=headers)

    @classmethod
    def not_found(cls, resource: str = "Resource", resource_id: object = None) -> ErrorResponse:
        """404 ``RESOURCE_NOT_FOUND`` naming the resource and its id."""
        return cls.from_exception(ResourceNotFoundError(resource, resource_id))

    @classmethod
    def validation_error(
        cls,
        message: str = "The request is invalid.",
        details: Mapping[str, Any] | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
    ) -> ErrorResponse:
        """400 ``VALIDATION_ERROR``; ``errors`` (per-field problems) goes into ``details``."""
        merged = dict(details or {})
        if errors is not None:
            merged["errors"] = [dict(item) for item in errors]
        return cls.from_exception(ValidationError(message, merged))

    @classmethod
    def unauthorized(cls, message: str | None = None) -> ErrorResponse:
        """401 ``AUTHENTICATION_ERROR`` with ``WWW-Authenticate: Bearer``."""
        exc = AuthenticationError(message)
        exc.headers["WWW-Authenticate"] = "Bearer"
        return cls.from_exception(exc)

    @classmethod
    def forbidden(cls, message: str | None = None) -> ErrorResponse:
        """403 ``AUTHORIZATION_ERROR``."""
        return cls.from_exception(AuthorizationError(message))

    @classmethod
    def conflict(cls, message: str | None = None, details: Mapping[str, Any] | None = None) -> ErrorResponse:
        """409 ``CONFLICT``."""
        return cls.from_exception(ConflictError(message, details))

    @classmethod
    def rate_limited(cls, retry_after: float | None = None, message: str | None = None) -> ErrorResponse:
        """429 ``RATE_LIMIT_EXCEEDED`` with ``Retry-After`` when ``retry_after`` is known."""
        return cls.from_exception(RateLimitExceededError(message, retry_after=retry_after))

    @classmethod
    def internal(cls, message: str | None = None) -> ErrorResponse:
        """500 ``INTERNAL_ERROR`` with a generic message (never the exception text)."""
        return cls.build(500, EnergyError.error_code, message or _INTERNAL_MESSAGE)

    def to_problem(self, *, type_base: str | None = None, instance: str | None = None) -> dict[str, Any]:
        """Return the error as RFC 9457 problem details (``application/problem+json``).

        ``type`` is ``about:blank`` (``title`` is then the HTTP reason phrase) unless
        ``type_base`` is given, in which case it is ``<type_base>/<error-code>``.
        Extension members: ``error_code``, ``details``, ``request_id``, ``timestamp``.
        """
        try:
            phrase = HTTPStatus(self.status_code).phrase
        except ValueError:
            phrase = "Error"
        problem: dict[str, Any] = {
            "type": f"{type_base.rstrip('/')}/{self.error.error_code.lower().replace('_', '-')}"
            if type_base
            else "about:blank",
            "title": phrase,
            "status": self.status_code,
            "detail": self.error.message,
        }
        if instance is not None:
            problem["instance"] = instance
        dumped = self.to_dict()
        problem.update(
            error_code=self.error.error_code,
            details=dumped["error"]["details"],
            request_id=self.request_id,
            timestamp=dumped["timestamp"],
        )
        return problem
