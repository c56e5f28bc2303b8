"""The standard response envelope: one shape for success and error bodies.

``APIResponse.success``, ``APIResponse.paginated`` and the ``ErrorResponse`` constructors
return pydantic models (so FastAPI's OpenAPI schema shows the envelope when they are used
as ``response_model``); ``.to_dict()`` gives the plain JSON-ready dict. The request id is
read from the correlation id of the current request. ``ErrorResponse.to_problem()``
renders RFC 9457 problem details for services that opt into ``application/problem+json``.

Example:
    >>> from energy_common.responses import APIResponse, ErrorResponse
    >>> APIResponse.success(data={"id": 1}, message="ok").to_dict()["message"]
    'ok'
    >>> ErrorResponse.not_found("User", 7).status_code
    404
"""

from energy_common.responses._builders import PROBLEM_JSON, APIResponse, ErrorResponse
from energy_common.responses._models import (
    Envelope,
    ErrorDetail,
    PaginatedResponse,
    PaginationMeta,
    SuccessEnvelope,
    pagination_meta,
)

__all__ = [
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
