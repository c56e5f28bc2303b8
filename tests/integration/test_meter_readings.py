"""The meter service's readings endpoint: pages, totals and ranges on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("meter_service")

import httpx
from meter_service import MeterSettings, create_app

# amqtt 0.12 warns about its own legacy configuration; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PASSWORD = "correct horse battery staple"
START = 1_780_000_000_000  # epoch ms of the first reading; one reading a minute after it
READINGS = 7


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@dataclass
class Meter:
    """A logged-in client and the meter whose ``READINGS`` readings are stored."""

    client: httpx.AsyncClient
    device_id: str
    runtime: Any

    async def page(self, **params: Any) -> dict[str, Any]:
        """GET the meter's readings (range: all of them unless given) and return the body."""
        params = {"start": _iso(START), "end": _iso(START + 60_000 * READINGS), **params}
        response = await self.client.get(f"/api/v1/devices/{self.device_id}/readings", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'meter.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def meter(database_url: str, tmp_path: Path) -> AsyncIterator[Meter]:
    """The app (embedded broker, memory cache) with the readings of a meter and of a neighbour stored."""
    settings = MeterSettings(
        tracing_exporter="off",
        admin_password=PASSWORD,
        jwt_secret_key=secrets.token_urlsafe(32),
        database_url=database_url,
        redis_url=None,
        mqtt_url=None,
        data_dir=tmp_path / "data",
    )
    device = f"r{uuid.uuid4().hex[:8]}"
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime = app.state.meter
        rows = [
            {"device_id": name, "ts": START + 60_000 * i, "power_w": 100.0 + i, "voltage_v": None, "energy_kwh": i / 10}
            for name in (device, device + "x")
            for i in range(READINGS)
        ]
        assert len(await runtime.readings.store_batch(rows)) == len(rows)
        for name in (device, device + "x"):  # readings of unknown meters are 404
            await runtime.devices.register_device(name, "meter")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meter.test", timeout=30) as client:
            answer = await client.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
            client.headers["Authorization"] = f"Bearer {answer.json()['data']['access_token']}"
            yield Meter(client, device, runtime)


@pytest.mark.parametrize(
    ("page", "limit", "indexes", "meta"),
    [
        (1, 3, [6, 5, 4], {"total": 7, "pages": 3, "has_next": True, "has_prev": False}),
        (3, 3, [0], {"total": 7, "pages": 3, "has_next": False, "has_prev": True}),
        (1, 7, [6, 5, 4, 3, 2, 1, 0], {"total": 7, "pages": 1, "has_next": False, "has_prev": False}),
        (1, 100, [6, 5, 4, 3, 2, 1, 0], {"total": 7, "pages": 1, "has_next": False, "has_prev": False}),
        (4, 3, [], {"total": 7, "pages": 3, "has_next": False, "has_prev": True}),
    ],
)
async def test_pages_hold_the_newest_readings_first_with_the_range_total(
    meter: Meter, page: int, limit: int, indexes: list[int], meta: dict[str, Any]
) -> None:
    """Each page has its slice of the meter's readings, newest first, and the total of the whole range."""
    body = await meter.page(page=page, limit=limit)
    assert body["success"] is True
    assert body["data"] == [
        {
            "device_id": meter.device_id,
            "ts": START + 60_000 * i,
            "power_w": 100.0 + i,
            "voltage_v": None,
            "energy_kwh": i / 10,
        }
        for i in indexes
    ]
    assert body["meta"] == {"page": page, "limit": limit, **meta}


@pytest.mark.parametrize(
    ("start", "end", "indexes", "total"),
    [
        (START + 60_000 * 2, START + 60_000 * 5, [4, 3], 3),  # start inclusive, end exclusive
        (START - 3_600_000, START, [], 0),  # before the first reading
    ],
)
async def test_the_range_bounds_the_readings_and_their_total(
    meter: Meter, start: int, end: int, indexes: list[int], total: int
) -> None:
    """Only readings with start <= ts < end are listed and counted, on the first and on a later page."""
    first = await meter.page(start=_iso(start), end=_iso(end), limit=2)
    assert [row["ts"] for row in first["data"]] == [START + 60_000 * i for i in indexes]
    assert first["meta"]["total"] == total
    later = await meter.page(start=_iso(start), end=_iso(end), limit=2, page=5)
    assert (later["data"], later["meta"]["total"]) == ([], total)


async def test_keyset_pages_are_stable_while_readings_arrive(meter: Meter) -> None:
    """Following next_cursor lists every reading once, newest first, even while newer ones are stored."""
    first = await meter.page(cursor="", limit=3, end=_iso(START + 60_000 * 100))
    seen = [row["ts"] for row in first["data"]]
    cursor = first["meta"]["next_cursor"]
    arriving = 0
    while cursor:
        newer = {"device_id": meter.device_id, "ts": START + 60_000 * (READINGS + arriving), "power_w": 1.0}
        await meter.runtime.readings.store_batch([{**newer, "voltage_v": None, "energy_kwh": None}])
        arriving += 1
        body = await meter.page(cursor=cursor, limit=3, end=_iso(START + 60_000 * 100))
        seen.extend(row["ts"] for row in body["data"])
        cursor = body["meta"]["next_cursor"]
    assert seen == [START + 60_000 * i for i in range(READINGS - 1, -1, -1)]
    assert arriving == 2


async def test_forged_cursors_are_refused_cleanly(meter: Meter) -> None:
    """An altered cursor, one of another meter and garbage all get a 400 envelope, never a 500."""
    first = await meter.page(cursor="", limit=2)
    cursor = first["meta"]["next_cursor"]
    body, _, tag = cursor.partition(".")
    other = f"/api/v1/devices/{meter.device_id}x/readings"
    for url, params in (
        (f"/api/v1/devices/{meter.device_id}/readings", {"cursor": f"{body[:-2]}AA.{tag}"}),
        (f"/api/v1/devices/{meter.device_id}/readings", {"cursor": "x' OR 1=1 --"}),
        (other, {"cursor": cursor}),
    ):
        query = {"start": _iso(START), "end": _iso(START + 60_000 * READINGS), **params}
        response = await meter.client.get(url, params=query)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["details"]["field"] == "cursor"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("readings", {"page": "4611686018427387904"}),
        ("summary", {"end": "9999-12-31"}),
        ("readings", {"start": "9999-12-30T00:00:00Z", "end": "9999-12-31T23:59:59-12:00"}),
        ("summary", {"start": "0.0", "end": "0.0"}),
        ("series", {"start": "1700000000", "end": "2026-01-01T00:00:00Z"}),
        ("series", {"start": "9999-12-30T00:00:00Z", "end": "9999-12-31T23:59:59-12:00"}),
    ],
)
async def test_out_of_range_numbers_and_dates_are_422(meter: Meter, path: str, params: dict[str, str]) -> None:
    """Pages past int64, dates past year 9999 and numbers posing as dates are a 422 envelope, not a 500."""
    response = await meter.client.get(f"/api/v1/devices/{meter.device_id}/{path}", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["success"] is False


async def test_series_and_summary_read_rollups_and_equal_the_raw_readings(meter: Meter) -> None:
    """/series and /summary give the same numbers before and after the rollups are refreshed."""
    span = {"start": _iso(START - 3_600_000), "end": _iso(START + 3 * 86_400_000)}
    url = f"/api/v1/devices/{meter.device_id}"
    before = (await meter.client.get(f"{url}/series", params={**span, "bucket": "1h"})).json()["data"]
    day_before = (await meter.client.get(f"{url}/summary", params={"start": "2026-05-28", "end": "2026-05-30"})).json()
    await meter.runtime.readings.series.refresh(now=START + 3 * 86_400_000)
    marks = await meter.runtime.readings.series.watermarks()
    assert marks["1d"] is not None
    assert marks["1d"] > START
    after = (await meter.client.get(f"{url}/series", params={**span, "bucket": "1h"})).json()["data"]
    day_after = (await meter.client.get(f"{url}/summary", params={"start": "2026-05-28", "end": "2026-05-30"})).json()
    assert after == before
    assert day_after["data"] == day_before["data"]
    assert [(p["readings"], p["max_w"], p["kwh"]) for p in after] == [(READINGS, 106.0, 0.6)]
    paris = await meter.client.get(f"{url}/series", params={**span, "bucket": "1d", "tz": "Europe/Paris"})
    assert paris.json()["data"][0]["start"].startswith("2026-05-27T22:00:00")
    bad = await meter.client.get(f"{url}/series", params={**span, "tz": "Mars/Olympus"})
    assert bad.status_code == 400
