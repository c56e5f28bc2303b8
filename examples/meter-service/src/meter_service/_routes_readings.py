"""Readings of a meter over a time range (keyset or numbered pages), its daily summary and bucketed series."""

import re
import time
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from energy_auth.fastapi import require_permission
from energy_common.exceptions import OutOfRangeError, ValidationError
from energy_common.responses import APIResponse, PaginatedResponse
from energy_common.utils import ensure_utc, utc_now
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BeforeValidator

from meter_service._routes_devices import DeviceId, Runtime
from meter_service._schemas import DaySummary, ReadingOut, SeriesPoint

__all__ = ["readings_router"]

_MAX_RANGE = timedelta(days=366)
_MAX_PAGE = 2**63 // 1000  # any page past this has an offset beyond int64 at the largest limit
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: object) -> object:
    # pydantic takes 0.0 or 1700000000 as a date (Unix time); the API speaks ISO 8601 only.
    if not isinstance(value, (date, datetime)) and not (isinstance(value, str) and _ISO_DATE.match(value)):
        raise ValueError("use an ISO 8601 date or time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]
IsoDate = Annotated[date, BeforeValidator(_iso_only)]
Bucket = Literal["15m", "1h", "1d"]


def _ms(moment: datetime, field: str) -> int:
    try:
        return int(ensure_utc(moment).timestamp() * 1000)
    except (OverflowError, ValueError) as exc:  # e.g. 9999-12-31T23:59:59-12:00 is past year 9999 in UTC
        raise OutOfRangeError(f"'{field}' is out of the supported date range.", {"field": field}) from exc


def _range(start: datetime | None, end: datetime | None, default: timedelta) -> tuple[int, int]:
    end_ms = _ms(end, "end") if end is not None else int(time.time() * 1000) + 60_000  # allow meters' clock skew
    start_ms = _ms(start, "start") if start is not None else end_ms - int(default.total_seconds() * 1000)
    if start_ms >= end_ms:
        raise ValidationError("'start' must be before 'end'.", {"field": "start"})
    if end_ms - start_ms > _MAX_RANGE.total_seconds() * 1000:
        raise ValidationError("The time range may span at most 366 days.", {"field": "end"})
    return start_ms, end_ms


def _day_range(start: date | None, end: date | None, default_days: int) -> tuple[int, int]:
    last = end or utc_now().date()
    first = start or last - timedelta(days=default_days - 1)
    try:
        after_last = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    except OverflowError as exc:
        raise OutOfRangeError("'end' is out of the supported date range.", {"field": "end"}) from exc
    return _range(datetime(first.year, first.month, first.day, tzinfo=UTC), after_last, timedelta(days=default_days))


def readings_router() -> APIRouter:
    """Build the readings router (``devices:read``)."""
    router = APIRouter(prefix="/devices", tags=["readings"], dependencies=[Depends(require_permission("devices:read"))])

    @router.get(
        "/{device_id}/readings",
        response_model=PaginatedResponse[ReadingOut] | APIResponse[list[ReadingOut]],
    )
    async def readings(
        device_id: DeviceId,
        *,
        runtime: Runtime,
        start: IsoDateTime | None = None,
        end: IsoDateTime | None = None,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
        page: Annotated[int | None, Query(ge=1, le=_MAX_PAGE)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """Readings with ``start <= time < end`` (ISO 8601; default: the last 24 h), newest first.

        Keyset pages (stable while readings arrive, as fast deep as at the top): send
        ``cursor=`` (empty) for the first page, then ``meta.next_cursor`` for the next.
        Without ``cursor``, numbered pages (``page``, default 1) with the range's total.
        """
        start_ms, end_ms = _range(start, end, timedelta(hours=24))
        store = runtime.readings
        body: Any
        if cursor is not None:
            items, following = await store.page(device_id, start_ms, end_ms, limit=limit, cursor=cursor or None)
            body = APIResponse.success(
                items, meta={"limit": limit, "next_cursor": following, "has_next": bool(following)}
            )
        else:
            number = page or 1
            items, total = await store.page_by_number(device_id, start_ms, end_ms, page=number, limit=limit)
            body = APIResponse.paginated(items, page=number, limit=limit, total=total)
        # Serialised once by pydantic-core (the declared response_model documents it).
        return Response(body.model_dump_json(by_alias=True), media_type="application/json")

    @router.get("/{device_id}/summary")
    async def summary(
        device_id: DeviceId, runtime: Runtime, start: IsoDate | None = None, end: IsoDate | None = None
    ) -> APIResponse[list[DaySummary]]:
        """Energy (kWh), peak and mean power per UTC day, ``start`` to ``end`` inclusive (default: 7 days)."""
        start_ms, end_ms = _day_range(start, end, 7)
        return APIResponse.success(await runtime.readings.daily_summary(device_id, start_ms, end_ms))

    @router.get("/{device_id}/series")
    async def series(
        device_id: DeviceId,
        *,
        runtime: Runtime,
        start: IsoDateTime | None = None,
        end: IsoDateTime | None = None,
        bucket: Bucket = "1h",
        tz: Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")] = "UTC",
    ) -> APIResponse[list[SeriesPoint]]:
        """Power and energy per bucket over a range (default: the last 24 h), for one chart in one call.

        Day buckets follow ``tz``'s calendar days (DST aware); a year of days or a month
        of hours is read from the rollups, not from every reading.
        """
        start_ms, end_ms = _range(start, end, timedelta(hours=24))
        points = await runtime.readings.series_points(device_id, start_ms, end_ms, bucket=bucket, tz=tz)
        return APIResponse.success(points)

    return router
