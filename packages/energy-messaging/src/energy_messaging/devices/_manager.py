"""DeviceManager: registry, telemetry routing, online/offline tracking and commands."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from energy_common.context import get_correlation_id
from energy_common.exceptions import ResourceNotFoundError

from energy_messaging._errors import (
    CommandExpiredError,
    CommandFailedError,
    CommandTimeoutError,
    DeviceOfflineError,
)
from energy_messaging._topics import TopicPattern, topic_level, validate_topic
from energy_messaging.devices._commands import Command, CommandHook, CommandState
from energy_messaging.devices._protocol import (
    DeviceTopics,
    StatusUpdate,
    command_payload,
    now_ms,
    parse_reply,
    parse_status,
)
from energy_messaging.devices._registry import Device, DeviceRegistry, DeviceState, InMemoryDeviceRegistry
from energy_messaging.mqtt._manager import MQTTManager
from energy_messaging.mqtt._message import DeadLetter, MQTTMessage

__all__ = ["DeviceManager", "TelemetryHandler"]

logger = logging.getLogger("energy_messaging.devices")

#: Called with the device and the telemetry message.
TelemetryHandler = Callable[[Device, MQTTMessage], Awaitable[Any]]
OfflinePolicy = Literal["fail", "wait", "send"]

_TOUCH_INTERVAL = 1.0  # seconds between last-seen writes per device
_EARLY_STATUS_LIMIT = 10_000  # status messages kept for devices not registered yet
_KNOWN_TTL = 2.0  # seconds a registered device id is trusted without a registry read (accept_telemetry)


class DeviceManager:
    """Manage devices over an :class:`MQTTManager` following the documented device protocol.

    Args:
        mqtt: The connected (or soon connected) MQTT manager.
        registry: Device store; in-memory by default, ``RedisDeviceRegistry`` to share it.
        topic_root: Root of the device topics (default ``devices``).
        instance_id: Id of this replica in reply topics (random by default).
        command_timeout: Default seconds :meth:`send_command` waits for a reply.
        on_command: Hook called on every command lifecycle transition.
        on_status: Hook called with ``(device, status)`` when a device goes online/offline.
        route_telemetry: Subscribe to the telemetry filter and route messages to the
            telemetry handlers. Pass False when the service ingests telemetry through its
            own subscription (e.g. a ``$share/<group>/`` one), so every replica does not
            also receive every message; guard that subscription with :meth:`accept_telemetry`.

    Only what comes from registered devices on their own topics reaches the application
    (MQTT carries no sender identity on a PUBLISH, so the topic names the device; the
    broker's ACLs make the name true): telemetry and status of an unregistered device
    become dead letters ``unknown_device``; a reply whose command id is not an
    outstanding command of this manager becomes ``unknown_command``, one that arrives on
    another device's reply topic ``wrong_device``. Each is counted in
    ``mqtt.state.dead_letter_reasons`` and never applied.

    Example:
        >>> async def main(mqtt: MQTTManager) -> None:  # doctest: +SKIP
        ...     devices = DeviceManager(mqtt)
        ...     await devices.register_device(device_id="sensor001", device_type="temperature_sensor")
        ...     reading = await devices.send_command("sensor001", "read_temperature", timeout=5)
    """

    def __init__(
        self,
        mqtt: MQTTManager,
        *,
        registry: DeviceRegistry | None = None,
        topic_root: str = "devices",
        instance_id: str | None = None,
        command_timeout: float = 10.0,
        on_command: CommandHook | None = None,
        on_status: Callable[[Device, DeviceState], Awaitable[None] | None] | None = None,
        route_telemetry: bool = True,
    ) -> None:
        self.mqtt = mqtt
        self.registry: DeviceRegistry = registry if registry is not None else InMemoryDeviceRegistry()
        self.topics = DeviceTopics(topic_root)
        self.instance_id = topic_level(instance_id or os.urandom(6).hex(), name="instance_id")
        self.command_timeout = command_timeout
        self._on_command = on_command
        self._on_status = on_status
        self._route_telemetry = route_telemetry
        self._handlers: dict[str, TelemetryHandler] = {}
        self._pending: dict[str, asyncio.Future[tuple[bool, Any]]] = {}
        self._pending_devices: dict[str, str] = {}  # command id -> the device it was sent to
        self._known: dict[str, float] = {}  # device id -> monotonic time its registration was last read
        self._online_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._touched: dict[str, float] = {}
        self._extra_topics: dict[str, str] = {}
        # Status seen before the device was registered (retained messages arrive first).
        self._early_status: dict[str, StatusUpdate] = {}
        self._started = False
        self._start_lock = asyncio.Lock()

    # ------------------------------------------------------------------ setup
    async def start(self) -> None:
        """Subscribe to telemetry, status and reply topics (done on first use too)."""
        async with self._start_lock:
            if self._started:
                return
            if self._route_telemetry:
                await self.mqtt.subscribe(self.topics.telemetry_filter, self._telemetry)
            await self.mqtt.subscribe(self.topics.status_filter, self._status)
            await self.mqtt.subscribe(self.topics.replies_filter(self.instance_id), self._reply)
            self._started = True

    def on_telemetry(self, device_type: str) -> Callable[[TelemetryHandler], TelemetryHandler]:
        """Decorator registering the telemetry handler of a device type."""

        def register(handler: TelemetryHandler) -> TelemetryHandler:
            self._handlers[device_type] = handler
            return handler

        return register

    def add_telemetry_handler(self, device_type: str, handler: TelemetryHandler) -> None:
        """Register the telemetry handler of a device type (replaces an earlier one)."""
        self._handlers[device_type] = handler

    # ------------------------------------------------------------------ registry
    async def register_device(
        self,
        device_id: str,
        device_type: str,
        topics: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Device:
        """Register (or re-register) a device and subscribe to its extra telemetry topics.

        Raises:
            TopicValidationError: If the id or a topic is not allowed.
        """
        topic_level(device_id, name="device_id")
        extra = [validate_topic(topic) for topic in topics or []]
        await self.start()
        current = await self.registry.get(device_id)
        device = Device(device_id, device_type, extra, dict(metadata or {}))
        if current is not None:
            device.status, device.status_seq, device.last_seen = current.status, current.status_seq, current.last_seen
            device.registered_at = current.registered_at
        await self.registry.add(device)
        self._known[device_id] = time.monotonic()
        early = self._early_status.pop(device_id, None)
        if early is not None and await self.registry.set_status(device_id, early.status, early.seq, time.time()):
            device.status, device.status_seq = early.status, early.seq
        for topic in extra:
            if topic not in self._extra_topics and TopicPattern(self.topics.telemetry_filter).match(topic) is None:
                self._extra_topics[topic] = device_id
                await self.mqtt.subscribe(topic, self._telemetry)
        return device

    async def unregister_device(self, device_id: str) -> None:
        """Remove a device.

        Raises:
            ResourceNotFoundError: If it is not registered.
        """
        self._known.pop(device_id, None)
        if not await self.registry.remove(device_id):
            raise ResourceNotFoundError("Device", device_id)

    async def get_device(self, device_id: str) -> Device:
        """Return a registered device.

        Raises:
            ResourceNotFoundError: If it is not registered.
        """
        device = await self.registry.get(device_id)
        if device is None:
            raise ResourceNotFoundError("Device", device_id)
        return device

    async def list_devices(self, device_type: str | None = None, status: DeviceState | None = None) -> list[Device]:
        """Return registered devices, optionally filtered by type and status."""
        return await self.registry.list(device_type, status)

    # ------------------------------------------------------------------ incoming
    async def accept_telemetry(self, message: MQTTMessage) -> bool:
        """Tell whether a telemetry message comes from a registered device; dead-letter it if not.

        For services that ingest telemetry through their own subscription
        (``route_telemetry=False``): call it first in the handler and drop the message
        when it returns False. The device is named by the ``device_id`` parameter of the
        filter (``{root}/{device_id}/telemetry``) or by an extra topic given at
        registration. A positive answer is trusted for 2 s without a registry read (a
        device unregistered on another replica is refused at most that much later).
        """
        device_id = message.params.get("device_id") or self._extra_topics.get(message.topic)
        if device_id is None:
            self._refuse(message, "unknown_device", "the topic names no device")
            return False
        now = time.monotonic()
        if now - self._known.get(device_id, -_KNOWN_TTL) < _KNOWN_TTL:
            return True
        if await self.registry.get(device_id) is None:
            self._known.pop(device_id, None)
            self._refuse(message, "unknown_device", f"device {device_id!r} is not registered")
            return False
        if len(self._known) >= _EARLY_STATUS_LIMIT:
            self._known.clear()
        self._known[device_id] = now
        return True

    def _refuse(self, message: MQTTMessage, reason: str, detail: str) -> None:
        self.mqtt.dead_letter(DeadLetter(message.topic, message.raw, reason, detail))

    async def _telemetry(self, message: MQTTMessage) -> None:
        device_id = message.params.get("device_id") or self._extra_topics.get(message.topic)
        if device_id is None:
            return
        device = await self.registry.get(device_id)
        if device is None:
            self._refuse(message, "unknown_device", f"device {device_id!r} is not registered")
            return
        now = time.time()
        if now - self._touched.get(device_id, 0.0) >= _TOUCH_INTERVAL:
            self._touched[device_id] = now
            await self.registry.touch(device_id, now)
            device.last_seen = now
        handler = self._handlers.get(device.device_type)
        if handler is not None:
            await handler(device, message)

    async def _status(self, message: MQTTMessage) -> None:
        device_id = message.params["device_id"]
        try:
            update = parse_status(message.payload)
        except ValueError as exc:
            self.mqtt.dead_letter(DeadLetter(message.topic, message.raw, "validation_error", str(exc)))
            return
        if not await self.registry.set_status(device_id, update.status, update.seq, time.time()):
            if await self.registry.get(device_id) is None:
                # Not applied, and counted; the latest one is remembered (bounded) so that a
                # registration right after the retained status arrived still starts right.
                self._refuse(message, "unknown_device", f"device {device_id!r} is not registered")
                if len(self._early_status) >= _EARLY_STATUS_LIMIT:
                    self._early_status.pop(next(iter(self._early_status)))
                self._early_status[device_id] = update
            return
        if update.status == "online":
            for waiter in self._online_waiters.pop(device_id, []):
                if not waiter.done():
                    waiter.set_result(None)
        if self._on_status is not None:
            device = await self.registry.get(device_id)
            if device is not None:
                result = self._on_status(device, update.status)
                if inspect.isawaitable(result):
                    await result

    async def _reply(self, message: MQTTMessage) -> None:
        try:
            command_id, ok, value = parse_reply(message.payload)
        except ValueError as exc:
            data = message.correlation_data
            if data is None:
                self.mqtt.dead_letter(DeadLetter(message.topic, message.raw, "validation_error", str(exc)))
                return
            command_id, ok, value = data.decode(errors="replace"), True, message.payload
        target = self._pending_devices.get(command_id)
        if target is None:
            self._refuse(message, "unknown_command", "no outstanding command of this manager has that id")
            return
        if target != message.params.get("device_id"):
            self._refuse(message, "wrong_device", "the command was sent to another device")
            return
        future = self._pending.get(command_id)
        if future is None:  # the reply of a fire-and-forget command: consumed
            self._pending_devices.pop(command_id, None)
        elif not future.done():
            future.set_result((ok, value))

    # ------------------------------------------------------------------ commands
    async def send_command(
        self,
        device_id: str,
        command: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the issue asks for seconds here
        wait: bool = True,
        when_offline: OfflinePolicy = "fail",
        expires_in: float | None = None,
    ) -> Any:
        """Send a command and (by default) return the device's result.

        Args:
            device_id: A registered device.
            command: Command name (a JSON string; not a topic level).
            params: JSON parameters.
            timeout: Seconds to wait for the reply (default ``command_timeout``).
            wait: False for fire-and-forget: return the :class:`Command` once sent.
            when_offline: For a device known to be offline: ``"fail"`` at once,
                ``"wait"`` until it is online or ``expires_in`` passed, or ``"send"``
                anyway (its persistent session queues it).
            expires_in: Seconds a command may wait for an offline device (default ``timeout``).

        Returns:
            The ``result`` of the device's reply, or the Command when ``wait`` is False.

        Raises:
            ResourceNotFoundError: Unknown device.
            DeviceOfflineError: Offline device with ``when_offline="fail"``.
            CommandExpiredError: Still offline at the expiry with ``when_offline="wait"``.
            CommandTimeoutError: No reply within ``timeout``.
            CommandFailedError: The device replied with an error.
        """
        timeout = self.command_timeout if timeout is None else timeout
        device = await self.get_device(device_id)
        await self.start()
        cmd = Command(device_id, command, dict(params or {}), correlation_id=get_correlation_id())
        details = {"device_id": device_id, "command": command, "command_id": cmd.command_id}
        await self._transition(cmd, "queued")
        if device.status == "offline":
            if when_offline == "fail":
                cmd.error = {"code": DeviceOfflineError.error_code}
                await self._transition(cmd, "failed")
                raise DeviceOfflineError(
                    f"Device '{device_id}' is offline; retry later or use when_offline='wait'.", details
                )
            if when_offline == "wait" and not await self._wait_online(
                device_id, timeout if expires_in is None else expires_in
            ):
                cmd.error = {"code": CommandExpiredError.error_code}
                await self._transition(cmd, "expired")
                raise CommandExpiredError(f"Device '{device_id}' stayed offline; the command expired unsent.", details)
        reply_to = self.topics.replies(device_id, self.instance_id)
        future: asyncio.Future[tuple[bool, Any]] = asyncio.get_running_loop().create_future()
        if wait:
            self._pending[cmd.command_id] = future
        elif len(self._pending_devices) >= _EARLY_STATUS_LIMIT:  # fire-and-forget ids wait for a reply, bounded
            self._pending_devices.pop(next(iter(self._pending_devices)))
        self._pending_devices[cmd.command_id] = device_id
        try:
            expires_at = now_ms() + int(timeout * 1000)
            await self.mqtt.publish(
                self.topics.commands(device_id),
                command_payload(cmd.command_id, command, cmd.params, reply_to=reply_to, expires_at=expires_at),
                qos=1,
                properties={"response_topic": reply_to, "correlation_data": cmd.command_id.encode()},
            )
            await self._transition(cmd, "sent")
            if not wait:
                return cmd
            try:
                ok, value = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                cmd.error = {"code": CommandTimeoutError.error_code}
                await self._transition(cmd, "timed_out")
                raise CommandTimeoutError(
                    f"Device '{device_id}' did not answer {command!r} within {timeout:g} s.", details
                ) from None
        finally:
            if wait:
                self._pending.pop(cmd.command_id, None)
                self._pending_devices.pop(cmd.command_id, None)
        if ok:
            cmd.result = value
            await self._transition(cmd, "succeeded")
            return value
        cmd.error = value
        await self._transition(cmd, "failed")
        raise CommandFailedError(f"Device '{device_id}' reported that {command!r} failed.", {**details, "error": value})

    async def _wait_online(self, device_id: str, seconds: float) -> bool:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._online_waiters.setdefault(device_id, []).append(waiter)
        try:
            await asyncio.wait_for(waiter, seconds)
        except TimeoutError:
            return False
        finally:
            waiters = self._online_waiters.get(device_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
        return True

    async def _transition(self, cmd: Command, state: CommandState) -> None:
        cmd.move(state)
        if self._on_command is None:
            return
        try:
            result = self._on_command(cmd)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("command hook failed for %s", cmd.command_id)
