"""DeviceManager: registry, telemetry routing, online/offline tracking and commands."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from energy_common.exceptions import ResourceNotFoundError

from energy_messaging._errors import (
    CommandError,
    CommandExpiredError,
    CommandFailedError,
    CommandTimeoutError,
)
from energy_messaging._topics import TopicPattern, topic_level, validate_topic
from energy_messaging.devices._commands import Command, CommandHook
from energy_messaging.devices._dispatcher import CommandDispatcher, CommandOptions
from energy_messaging.devices._protocol import DeviceTopics, StatusUpdate, parse_reply, parse_status
from energy_messaging.devices._registry import Device, DeviceRegistry, DeviceState, InMemoryDeviceRegistry
from energy_messaging.mqtt._manager import MQTTManager
from energy_messaging.mqtt._message import DeadLetter, MQTTMessage

__all__ = ["DeviceManager", "TelemetryHandler", "command_result"]

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
        commands: Command store, per-device limit, shared replies and metrics
            (:class:`CommandOptions`; in memory, unlimited by default).

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
        commands: CommandOptions | None = None,
    ) -> None:
        self.mqtt = mqtt
        self.registry: DeviceRegistry = registry if registry is not None else InMemoryDeviceRegistry()
        self.topics = DeviceTopics(topic_root)
        self.instance_id = topic_level(instance_id or os.urandom(6).hex(), name="instance_id")
        self.command_timeout = command_timeout
        self._on_status = on_status
        self._route_telemetry = route_telemetry
        self._handlers: dict[str, TelemetryHandler] = {}
        self._known: dict[str, float] = {}  # device id -> monotonic time its registration was last read
        self.commands = CommandDispatcher(
            mqtt,
            self.topics,
            self.instance_id,
            commands if commands is not None else CommandOptions(),
            hook=on_command,
            get_device=self.get_device,
            find_device=self.registry.get,
        )
        self._sweeper: asyncio.Task[None] | None = None
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
            await self.mqtt.subscribe(self.commands.replies_filter, self._reply)
            self._sweeper = self.mqtt._tasks.spawn(self.commands.run_sweeper(), "commands-sweeper")
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
            try:
                await self.commands.device_online(device_id)
            except Exception:
                logger.exception("queued commands of %s could not be sent", device_id)
        if self._on_status is not None:
            device = await self.registry.get(device_id)
            if device is not None:
                result = self._on_status(device, update.status)
                if inspect.isawaitable(result):
                    await result

    async def _reply(self, message: MQTTMessage) -> None:
        payload = message.payload
        if isinstance(payload, dict) and payload.get("status") == "received" and isinstance(payload.get("id"), str):
            refused = await self.commands.on_reply(payload["id"], message.params.get("device_id", ""), "received", None)
            if refused is not None:
                self._refuse(message, *refused)
            return
        try:
            command_id, ok, value = parse_reply(payload)
        except ValueError as exc:
            data = message.correlation_data
            if data is None:
                self.mqtt.dead_letter(DeadLetter(message.topic, message.raw, "validation_error", str(exc)))
                return
            command_id, ok, value = data.decode(errors="replace"), True, payload
        refused = await self.commands.on_reply(
            command_id, message.params.get("device_id", ""), "ok" if ok else "error", value
        )
        if refused is not None:
            self._refuse(message, *refused)

    # ------------------------------------------------------------------ commands
    async def submit_command(
        self,
        device_id: str,
        command: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - seconds the device has to answer once sent
        deliver_when_online: bool = False,
        expires_in: float | None = None,
        idempotency_key: str | None = None,
    ) -> Command:
        """Store a command, send it, and return it at once (state ``sent``, or ``queued``).

        The command is in the store before anything is published, so any replica can
        report it (:meth:`get_command`) and a restart does not lose it.

        Args:
            device_id: A registered device.
            command: Command name.
            params: JSON parameters.
            timeout: Seconds the device has to answer once sent (default ``command_timeout``).
            deliver_when_online: For a device known to be offline, keep the command queued
                and send it (once) on its next ``online`` status; ``expired`` if that does
                not happen within ``expires_in``.
            expires_in: Seconds a queued command may wait (default ``timeout``).
            idempotency_key: A request retried with the same key (for the same device)
                returns the first command instead of sending a second one.

        Returns:
            The stored command (the first one, for a known ``idempotency_key``).

        Raises:
            ResourceNotFoundError: Unknown device.
            DeviceOfflineError: The device is offline and ``deliver_when_online`` is False.
            CommandLimitError: The device has ``max_in_flight`` unfinished commands (429).
            CommandStoreError: The store failed.
            PublishError: The broker refused the command (it is then ``failed``).
        """
        await self.start()
        return await self.commands.submit(
            device_id,
            command,
            params,
            timeout=self.command_timeout if timeout is None else timeout,
            deliver_when_online=deliver_when_online,
            expires_in=expires_in,
            idempotency_key=idempotency_key,
        )

    async def get_command(self, command_id: str) -> Command:
        """Return a command as the store knows it (from any replica).

        Raises:
            ResourceNotFoundError: No such command.
        """
        return await self.commands.enforce(await self.commands.get(command_id))

    async def wait_command(self, command_id: str, timeout: float | None = None) -> Command:  # noqa: ASYNC109
        """Wait until the command finished (or ``timeout`` seconds passed) and return it.

        Polls the store with backoff (50 ms doubling to ``poll_max``) and wakes at once
        when the reply reaches this replica, so it sees a reply taken by another replica too.

        Raises:
            ResourceNotFoundError: No such command.
        """
        return await self.commands.wait(command_id, timeout)

    async def cancel_command(self, command_id: str) -> Command:
        """Cancel a queued command (``cancelled``).

        Raises:
            ResourceNotFoundError: No such command.
            CommandNotCancellableError: It was already sent or finished (409).
        """
        return await self.commands.cancel(command_id)

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
        idempotency_key: str | None = None,
    ) -> Any:
        """Send a command and (by default) return the device's result.

        Built on :meth:`submit_command` and :meth:`wait_command`, so the command is
        stored like any other.

        Args:
            device_id: A registered device.
            command: Command name (a JSON string; not a topic level).
            params: JSON parameters.
            timeout: Seconds to wait for the reply (default ``command_timeout``).
            wait: False for fire-and-forget: return the :class:`Command` once sent (or queued).
            when_offline: For a device known to be offline: ``"fail"`` at once,
                ``"wait"`` until it is online or ``expires_in`` passed, or ``"send"``
                anyway (its persistent session queues it).
            expires_in: Seconds a command may wait for an offline device (default ``timeout``).
            idempotency_key: See :meth:`submit_command`.

        Returns:
            The ``result`` of the device's reply, or the Command when ``wait`` is False.

        Raises:
            ResourceNotFoundError: Unknown device.
            DeviceOfflineError: Offline device with ``when_offline="fail"``.
            CommandExpiredError: Still offline at the expiry with ``when_offline="wait"``.
            CommandTimeoutError: No reply within ``timeout``.
            CommandFailedError: The device replied with an error.
            CommandLimitError: Too many commands in flight for the device.
        """
        await self.start()
        seconds = self.command_timeout if timeout is None else timeout
        cmd = await self.commands.submit(
            device_id,
            command,
            params,
            timeout=seconds,
            deliver_when_online=when_offline == "wait",
            expires_in=expires_in,
            idempotency_key=idempotency_key,
            send_when_offline=when_offline == "send",
        )
        if not wait:
            return cmd
        return command_result(await self.commands.wait(cmd.command_id))

    async def aclose(self) -> None:
        """Stop the command sweeper (the MQTT manager also stops it when it disconnects)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None


def command_result(cmd: Command) -> Any:
    """Return a finished command's result, or raise the error of its final state.

    Raises:
        CommandFailedError: ``failed`` (the device's error object in ``details["error"]``).
        CommandTimeoutError: ``timed_out``.
        CommandExpiredError: ``expired``.
        CommandError: ``cancelled``.
    """
    details = {"device_id": cmd.device_id, "command": cmd.command, "command_id": cmd.command_id}
    if cmd.state == "succeeded":
        return cmd.result
    if cmd.state == "timed_out":
        raise CommandTimeoutError(
            f"Device '{cmd.device_id}' did not answer {cmd.command!r} within {cmd.timeout:g} s.", details
        )
    if cmd.state == "expired":
        raise CommandExpiredError(f"Device '{cmd.device_id}' stayed offline; the command expired unsent.", details)
    if cmd.state == "failed":
        raise CommandFailedError(
            f"Device '{cmd.device_id}' reported that {cmd.command!r} failed.", {**details, "error": cmd.error}
        )
    raise CommandError(f"Command {cmd.command!r} ended {cmd.state}.", {**details, "state": cmd.state})
