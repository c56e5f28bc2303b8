"""Tests for energy_common.utils: UTC time, ids and pagination parameters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

import httpx
import pytest
from energy_common.config import Settings
from energy_common.exceptions import ValidationError
from energy_common.middleware import setup_middleware
from energy_common.utils import PaginationParams, ensure_utc, format_utc, new_id, utc_now, uuid7
from energy_common.utils.web import Pagination, pagination_dependency
from fastapi import Depends, FastAPI


def test_utc_now_is_aware() -> None:
    """utc_now() returns an aware UTC datetime."""
    now = utc_now()
    assert now.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - now).total_seconds()) < 60


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 1, 1, 12, 0), "2026-01-01T12:00:00Z"),  # noqa: DTZ001 - naive input is the case under test
        (datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), "2026-01-01T12:00:00Z"),
        (datetime(2026, 1, 1, 12, 0, 0, 500, tzinfo=UTC), "2026-01-01T12:00:00.000500Z"),
    ],
)
def test_format_utc(value: datetime, expected: str) -> None:
    """Datetimes are converted to UTC (naive ones taken as UTC) and printed with Z."""
    assert format_utc(value) == expected
    assert ensure_utc(value).tzinfo is UTC


def test_uuid7_layout_and_order() -> None:
    """uuid7() has version 7, the RFC variant, and sorts by creation millisecond."""
    ids = [uuid7() for _ in range(200)]
    assert all(item.version == 7 and item.variant == uuid.RFC_4122 for item in ids)
    assert len(set(ids)) == 200
    millis = [item.int >> 80 for item in ids]
    assert millis == sorted(millis)
    assert abs(millis[0] - int(datetime.now(UTC).timestamp() * 1000)) < 60_000


@pytest.mark.parametrize("prefix", [None, "dev", "evt2"])
def test_new_id(prefix: str | None) -> None:
    """new_id() is 32 hex chars of a UUIDv7, optionally prefixed."""
    value = new_id(prefix)
    hex_part = value if prefix is None else value.removeprefix(f"{prefix}_")
    assert len(hex_part) == 32
    assert uuid.UUID(hex=hex_part).version == 7


@pytest.mark.parametrize("prefix", ["", "Dev", "1dev", "dev_x", "a" * 17, "dév"])
def test_new_id_rejects_bad_prefixes(prefix: str) -> None:
    """Prefixes are short lowercase tags."""
    with pytest.raises(ValidationError, match="prefix"):
        new_id(prefix)


def test_pagination_params() -> None:
    """PaginationParams computes the offset."""
    assert PaginationParams(page=3, limit=10).offset == 20
    assert PaginationParams().offset == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"page": 0}, "page"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": 20, "max_limit": 10}, "limit"),
        ({"page": "2"}, "page"),
        ({"page": True}, "page"),
    ],
)
def test_pagination_params_rejects_bad_values(kwargs: dict[str, Any], field: str) -> None:
    """Out-of-range or non-integer values raise ValidationError naming the field."""
    with pytest.raises(ValidationError) as info:
        PaginationParams(**kwargs)
    assert info.value.details["field"] == field


SmallPage = Annotated[PaginationParams, Depends(pagination_dependency(default_limit=5, max_limit=10))]


def build_app() -> FastAPI:
    """An app with the pagination dependency."""
    app = FastAPI()

    @app.get("/default")
    async def default(p: Pagination) -> dict[str, int]:
        return {"page": p.page, "limit": p.limit, "offset": p.offset}

    @app.get("/small")
    async def small(p: SmallPage) -> dict[str, int]:
        return {"page": p.page, "limit": p.limit}

    setup_middleware(app, Settings(service_name="t"))
    return app


@pytest.mark.parametrize(
    ("url", "status", "body"),
    [
        ("/default", 200, {"page": 1, "limit": 20, "offset": 0}),
        ("/default?page=3&limit=50", 200, {"page": 3, "limit": 50, "offset": 100}),
        ("/small", 200, {"page": 1, "limit": 5}),
        ("/small?limit=11", 422, None),
        ("/default?page=0", 422, None),
        ("/default?limit=abc", 422, None),
    ],
)
async def test_pagination_dependency(url: str, status: int, body: dict[str, int] | None) -> None:
    """The FastAPI dependency reads page/limit and rejects bad values with the 422 envelope."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app()), base_url="http://t") as http:
        response = await http.get(url)
    assert response.status_code == status
    if body is not None:
        assert response.json() == body
    else:
        assert response.json()["error"]["error_code"] == "VALIDATION_ERROR"


def test_pagination_bounds_in_openapi() -> None:
    """The bounds of page and limit show in the OpenAPI schema."""
    params = build_app().openapi()["paths"]["/small"]["get"]["parameters"]
    limit = next(item for item in params if item["name"] == "limit")
    assert limit["schema"]["maximum"] == 10
    assert limit["schema"]["default"] == 5


def test_pagination_dependency_checks_its_defaults() -> None:
    """A default above the maximum is a programming error caught at start-up."""
    with pytest.raises(ValueError, match="default_limit"):
        pagination_dependency(default_limit=50, max_limit=10)


def test_public_names() -> None:
    """The public surface of energy_common.utils is pinned."""
    import energy_common.utils as module
    from energy_common.utils import web

    assert module.__all__ == [
        "DEFAULT_LIMIT",
        "MAX_LIMIT",
        "PaginationParams",
        "ensure_utc",
        "format_utc",
        "new_id",
        "utc_now",
        "uuid7",
    ]
    assert web.__all__ == ["Pagination", "pagination_dependency"]
