"""A device simulator that follows the documented device protocol, like a real meter."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, cast

from energy_messaging._topics import topic_level
from energy_messaging.devices._protocol import DeviceTopics, reply_payload, status_payload
from energy_messaging.mqtt._manager import MQTTManager
from energy_messaging.mqtt._message import MQTTMessage
from energy_messaging.mqtt._options import LastWill, ProtocolChoice

__all__ = ["CommandFunction", "DeviceSimulator"]

#: A simulated command: takes the params, returns the JSON result (raise to report an error).
CommandFunction = Callable[[dict[str, Any]], Any]


class DeviceSimulator:
    """A simulated energy meter: telemetry at a rate, command replies, status with Last Will.

    On every connection it takes a new status sequence number, sets its Last Will to
    ``offline`` with that number and publishes ``online`` (retained), exactly as the
    README's device protocol asks of firmware.

    Args:
        device_id: The device id (a single topic level).
        host: Broker host.
        port: Broker port.
        topic_root: Root of the device topics.
        interval: Seconds between telemetry messages; None for no telemetry.
        protocol: ``"auto"``, ``"5"`` or ``"3.1.1"``.
        commands: Extra or replacement command functions by name.
        client_id: MQTT client id (defaults to ``sim-<device_id>``).
        password: The device's secret; given, the simulator logs in with its own
            credentials (username = device id), as a provisioned meter does.

    Example:
        >>> async def main() -> None:  # doctest: +SKIP
        ...     async with DeviceSimulator("sensor001", interval=1.0):
        ...         await asyncio.sleep(10)
    """

    def __init__(
        self,
        device_id: str,
        host: str = "localhost",
        port: int = 1883,
        *,
        topic_root: str = "devices",
        interval: float | None = 1.0,
        protocol: ProtocolChoice | str = "auto",
        commands: dict[str, CommandFunction] | None = None,
        client_id: str | None = None,
        password: str | None = None,
    ) -> None:
        self.device_id = topic_level(device_id, name="device_id")
        self.topics = DeviceTopics(topic_root)
        self.interval = interval
        self.seq = time.time_ns() // 1_000_000
        self.energy_kwh = 0.0
        self.telemetry_sent = 0
        self.commands_handled = 0
        self._commands: dict[str, CommandFunction] = {
            "read_temperature": lambda _params: {"temperature": round(random.uniform(18, 26), 2)},  # noqa: S311
            "read_meter": lambda _params: self.reading(),
            "set_interval": self._set_interval,
            "ping": lambda _params: {"pong": True},
            **(commands or {}),
        }
        self.mqtt = MQTTManager(
            host,
            port,
            client_id=client_id or f"sim-{device_id}",
            # Its own credentials (username = device id, password = the secret) when given.
            username=device_id if password is not None else None,
            password=password,
            protocol=cast("ProtocolChoice", protocol),  # MQTTManager checks the value
            will=self._will,
            on_connect=self._announce,
        )
        self._task: asyncio.Task[None] | None = None

    def reading(self) -> dict[str, Any]:
        """The meter's current reading (the telemetry payload)."""
        power = round(random.uniform(200, 3500), 1)  # noqa: S311 - simulated data
        self.energy_kwh += power / 3_600_000
        return {
            "ts": time.time_ns() // 1_000_000,
            "power_w": power,
            "voltage_v": round(random.uniform(228, 232), 1),  # noqa: S311
            "energy_kwh": round(self.energy_kwh, 6),
        }

    def _set_interval(self, params: dict[str, Any]) -> dict[str, Any]:
        seconds = params.get("seconds")
        if not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError("params.seconds must be a positive number")
        self.interval = float(seconds)
        return {"interval": self.interval}

    def _will(self) -> LastWill:
        self.seq += 1
        return LastWill(self.topics.status(self.device_id), status_payload("offline", self.seq), qos=1, retain=True)

    async def _announce(self) -> None:
        await self.mqtt.publish(
            self.topics.status(self.device_id), status_payload("online", self.seq), qos=1, retain=True, wait=False
        )

    async def start(self) -> None:
        """Connect, subscribe to commands and start sending telemetry."""
        await self.mqtt.subscribe(self.topics.commands(self.device_id), self._on_command, qos=1)
        await self.mqtt.connect()
        if self.interval is not None:
            self._task = asyncio.create_task(self._telemetry_loop(), name=f"energy-sim-{self.device_id}")

    async def stop(self) -> None:
        """Go offline cleanly: publish ``offline`` with the current sequence, then disconnect."""
        await self._stop_telemetry()
        with contextlib.suppress(Exception):
            await self.mqtt.publish(
                self.topics.status(self.device_id), status_payload("offline", self.seq), qos=1, retain=True
            )
        await self.mqtt.disconnect()

    async def kill(self) -> None:
        """Crash: drop the connection without DISCONNECT so the broker publishes the Last Will."""
        await self._stop_telemetry()
        await self.mqtt.abort()

    async def _stop_telemetry(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _telemetry_loop(self) -> None:
        topic = self.topics.telemetry(self.device_id)
        while self.interval is not None:
            with contextlib.suppress(Exception):
                await self.mqtt.publish(topic, self.reading(), qos=1, wait=False)
                self.telemetry_sent += 1
            await asyncio.sleep(self.interval)

    async def _on_command(self, message: MQTTMessage) -> None:
        payload = message.payload if isinstance(message.payload, dict) else {}
        command_id = payload.get("id")
        reply_to = message.response_topic or payload.get("reply_to")
        if not isinstance(command_id, str) or not isinstance(reply_to, str):
            return  # not answerable: the protocol requires id and reply_to
        function = self._commands.get(str(payload.get("command")))
        raw_params = payload.get("params")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        if function is None:
            reply = reply_payload(command_id, error={"code": "UNKNOWN_COMMAND", "message": "unknown command"})
        else:
            try:
                reply = reply_payload(command_id, result=function(params))
            except Exception as exc:  # noqa: BLE001 - reported to the caller as the command's error
                reply = reply_payload(command_id, error={"code": "COMMAND_ERROR", "message": str(exc)})
        props: dict[str, Any] = {}
        if message.correlation_data is not None:
            props["correlation_data"] = message.correlation_data
        self.commands_handled += 1
        await self.mqtt.publish(reply_to, reply, qos=1, properties=props or None, wait=False)
