"""The meter service with EVENTS_OUTBOX: reading.recorded goes through the transactional outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("meter_service")

from energy_messaging.events import Event

from tests.integration.test_meter_service import engine_settings, running, wait_for

ENGINES = ["embedded", pytest.param("engines", marks=[pytest.mark.postgres, pytest.mark.redis, pytest.mark.mqtt])]


@pytest.fixture(params=ENGINES)
def engines(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    """None for the embedded defaults, else the real engines' settings values."""
    if request.param == "embedded":
        return None
    return dict(request.getfixturevalue("real_engines"))


from tests.integration.test_meter_service import real_engines  # noqa: E402, F401 - the fixture


async def test_each_stored_reading_gets_one_outbox_event(engines: dict[str, Any] | None, tmp_path: Path) -> None:
    """With the outbox on, every stored reading is relayed as one reading.recorded event with a stable id."""
    settings = engine_settings(
        engines, tmp_path, simulator_enabled=True, simulator_meters=2, simulator_interval=0.2, events_outbox=True
    )
    async with running(settings) as service:
        runtime = service.runtime
        assert runtime.outbox is not None
        assert runtime.relay is not None
        assert runtime.bus is not None
        seen: list[Event] = []

        async def collect(event: Event) -> None:
            seen.append(event)

        runtime.bus.subscribe("reading.recorded", collect)

        async def relayed() -> bool:
            return runtime.ingestor.stats.stored >= 6 and runtime.relay is not None and runtime.relay.stats.relayed >= 6

        await wait_for(relayed, what="6 relayed events")
        assert runtime.ingestor.stats.events >= runtime.ingestor.stats.stored
    assert seen
    ids = [event.id for event in seen]
    keys = {(event.data["device_id"], event.data["ts"]) for event in seen}
    assert len(ids) == len(set(ids))  # no duplicate without a crash
    assert len(keys) == len(ids)
    assert all(len(event.id) == 32 for event in seen)
