"""FastAPI helpers for the utilities (extra ``web``): the pagination dependency."""

# No ``from __future__ import annotations`` here: FastAPI must evaluate the annotations of
# the inner dependency, which refer to the enclosing function's ``max_limit``.
from collections.abc import Callable
from typing import Annotated

from energy_common._extras import missing_extra

try:
    from fastapi import Depends, Query
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-common", "web", exc) from exc

from energy_common.utils._pagination import DEFAULT_LIMIT, MAX_LIMIT, PaginationParams

__all__ = ["Pagination", "pagination_dependency"]


def pagination_dependency(
    *, default_limit: int = DEFAULT_LIMIT, max_limit: int = MAX_LIMIT
) -> Callable[[int, int], PaginationParams]:
    """Build a FastAPI dependency reading ``?page=`` and ``?limit=`` query parameters.

    Out-of-range values are rejected by FastAPI's validation (422 envelope) and the
    bounds show in the OpenAPI schema.

    Args:
        default_limit: ``limit`` when the client sends none.
        max_limit: Largest ``limit`` accepted.

    Example:
        >>> from fastapi import Depends, FastAPI
        >>> app = FastAPI()
        >>> @app.get("/devices")
        ... async def devices(p: PaginationParams = Depends(pagination_dependency(max_limit=50))) -> dict[str, int]:
        ...     return {"offset": p.offset}
    """
    if not 1 <= default_limit <= max_limit:
        raise ValueError(f"default_limit must be between 1 and max_limit ({max_limit}), got {default_limit}.")

    def pagination(
        page: Annotated[int, Query(ge=1, description="1-based page number.")] = 1,
        limit: Annotated[int, Query(ge=1, le=max_limit, description="Items per page.")] = default_limit,
    ) -> PaginationParams:
        return PaginationParams(page=page, limit=limit, max_limit=max_limit)

    return pagination


#: ``page``/``limit`` with the default bounds, ready for a route signature:
#: ``async def list_devices(p: Pagination) -> ...``.
Pagination = Annotated[PaginationParams, Depends(pagination_dependency())]
