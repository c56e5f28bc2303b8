"""The built-in fleet of simulated meters (``energy_messaging.simulator.DeviceSimulator``)."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any, Self

from energy_messaging.simulator import DeviceSimulator

__all__ = ["MeterFleet"]

logger = logging.getLogger("meter_service.simulator")


class MeterFleet:
    """N simulated meters publishing telemetry and answering commands.

    Args:
        device_ids: Ids of the meters.
        host: Broker host.
        port: Broker port.
        topic_root: Root of the device topics.
        interval: Seconds between two readings of one meter.
        protocol: MQTT protocol of the simulators (``"3.1.1"`` on the embedded broker).
        passwords: Each meter's secret: it logs in with its own credentials (username = its id).
    """

    def __init__(
        self,
        device_ids: list[str],
        host: str,
        port: int,
        *,
        topic_root: str = "devices",
        interval: float = 1.0,
        protocol: str = "auto",
        passwords: dict[str, str] | None = None,
    ) -> None:
        self.meters = [
            DeviceSimulator(
                device_id,
                host,
                port,
                topic_root=topic_root,
                interval=interval,
                protocol=protocol,
                commands={"read_meter": self._logged(device_id)},
                password=(passwords or {}).get(device_id),
            )
            for device_id in device_ids
        ]

    def _logged(self, device_id: str) -> Any:
        def read_meter(_params: dict[str, Any]) -> dict[str, Any]:
            # Runs inside the command message's context: the line carries the HTTP request's id.
            logger.info("meter %s answers read_meter", device_id, extra={"device_id": device_id})
            meter = next(m for m in self.meters if m.device_id == device_id)
            return meter.reading()

        return read_meter

    @property
    def telemetry_sent(self) -> int:
        """Readings published by all meters so far."""
        return sum(meter.telemetry_sent for meter in self.meters)

    async def start(self) -> None:
        """Connect every meter (they announce ``online`` and start publishing)."""
        await asyncio.gather(*(meter.start() for meter in self.meters))
        logger.info("%d simulated meters started", len(self.meters))

    async def stop(self) -> None:
        """Disconnect every meter cleanly (``offline`` status)."""
        await asyncio.gather(*(meter.stop() for meter in self.meters), return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
