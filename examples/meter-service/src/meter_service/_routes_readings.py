"""Readings of a meter over a time range (paginated) and its energy summary per day."""

import time
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from energy_auth.fastapi import require_permission
from energy_common.exceptions import ValidationError
from energy_common.responses import APIResponse, PaginatedResponse
from energy_common.utils import ensure_utc, utc_now
from fastapi import APIRouter, Depends, Query, Response

from meter_service._repositories import ReadingRepository
from meter_service._routes_devices import DeviceId, Runtime
from meter_service._schemas import DaySummary, ReadingOut

__all__ = ["readings_router"]

_MAX_RANGE = timedelta(days=366)


def _ms(moment: datetime) -> int:
    return int(ensure_utc(moment).timestamp() * 1000)


def _range(start: datetime | None, end: datetime | None, default: timedelta) -> tuple[int, int]:
    end_ms = _ms(end) if end is not None else int(time.time() * 1000) + 60_000  # allow meters' clock skew
    start_ms = _ms(start) if start is not None else end_ms - int(default.total_seconds() * 1000)
    if start_ms >= end_ms:
        raise ValidationError("'start' must be before 'end'.", {"field": "start"})
    if end_ms - start_ms > _MAX_RANGE.total_seconds() * 1000:
        raise ValidationError("The time range may span at most 366 days.", {"field": "end"})
    return start_ms, end_ms


def readings_router() -> APIRouter:
    """Build the readings router (``devices:read``)."""
    router = APIRouter(prefix="/devices", tags=["readings"], dependencies=[Depends(require_permission("devices:read"))])

    @router.get("/{device_id}/readings", response_model=PaginatedResponse[ReadingOut])
    async def readings(
        device_id: DeviceId,
        *,
        runtime: Runtime,
        start: datetime | None = None,
        end: datetime | None = None,
        page: Annotated[int, Query(ge=1)] = 1,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """Readings with ``start <= time < end`` (ISO 8601; default: the last 24 h), newest first."""
        start_ms, end_ms = _range(start, end, timedelta(hours=24))
        async with runtime.db.session() as session:
            found = await ReadingRepository(session).in_range(device_id, start_ms, end_ms, page=page, limit=limit)
        body = APIResponse.paginated(found.items, page=found.page, limit=found.limit, total=found.total)
        # Serialised once by pydantic-core (the declared response_model documents it).
        return Response(body.model_dump_json(by_alias=True), media_type="application/json")

    @router.get("/{device_id}/summary")
    async def summary(
        device_id: DeviceId, runtime: Runtime, start: date | None = None, end: date | None = None
    ) -> APIResponse[list[DaySummary]]:
        """Energy (kWh), peak and mean power per UTC day, ``start`` to ``end`` inclusive (default: 7 days)."""
        last = end or utc_now().date()
        first = start or last - timedelta(days=6)
        start_ms, end_ms = _range(
            datetime(first.year, first.month, first.day, tzinfo=UTC),
            datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1),
            timedelta(days=7),
        )
        async with runtime.db.session() as session:
            days = await ReadingRepository(session).daily_summary(device_id, start_ms, end_ms)
        return APIResponse.success(days)

    return router
