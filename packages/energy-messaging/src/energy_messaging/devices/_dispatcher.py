"""The durable command engine under ``DeviceManager``: store, dispatch, replies, timeouts, waiting.

Every state change is a compare-and-set on the stored record (see ``_store``), so it
happens once whichever replica tries it: the replica that published the command, the
one whose shared subscription got the reply, or a sweeper enforcing a deadline. The
command is marked ``sent`` *before* it is published (a claim): a crash between the two
leaves a ``sent`` command that times out, never one published twice.

Waiting for the outcome is polling the store with backoff (50 ms doubling to
``poll_max``), woken at once when the reply reaches this replica: it works on every
backend and across replicas without a pub/sub channel.

A command keeps the correlation id of the request that submitted it: its publish and
every transition's hook (and log line) run under that id, also when they happen
outside the request (a queued command sent when its meter comes online, a sweeper's
timeout), so the meter, its reply and the logs all carry the request's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from energy_common.context import get_correlation_id
from energy_common.exceptions import ResourceNotFoundError

from energy_messaging._errors import (
    CommandNotCancellableError,
    DeviceOfflineError,
    MQTTOptionsError,
)
from energy_messaging.devices._commands import Command, CommandHook, CommandState
from energy_messaging.devices._protocol import DeviceTopics, command_payload
from energy_messaging.devices._registry import Device
from energy_messaging.devices._store import CommandStore, InMemoryCommandStore
from energy_messaging.devices._telemetry import CommandMetrics, CommandTelemetry, correlation_of
from energy_messaging.mqtt._manager import MQTTManager

__all__ = ["CommandDispatcher", "CommandOptions"]

logger = logging.getLogger("energy_messaging.devices")

_LIVE = frozenset({"sent", "delivered"})


@dataclass(frozen=True, slots=True)
class CommandOptions:
    """How :class:`~energy_messaging.devices.DeviceManager` keeps its commands.

    Args:
        store: Where commands live: ``InMemoryCommandStore()`` (default, one process),
            ``RedisCommandStore`` or ``SQLCommandStore`` (shared by replicas, kept across restarts).
        max_in_flight: Unfinished commands allowed per device (``CommandLimitError`` past it).
        reply_share_group: Subscribe to the replies through ``$share/<group>/`` so that any
            replica of the group takes a reply (give every replica the same ``instance_id``).
        metrics: Receives the command counters and the round-trip histogram.
        sweep_interval: Seconds between sweeps for deadlines, expiries and queued commands
            of devices that came online.
        poll_max: Longest pause (seconds) between two store reads of a waiting call.
        tracer_provider: OpenTelemetry tracer provider of the command spans (default: the global one).

    Raises:
        MQTTOptionsError: A value out of range (``details["option"]`` names it).
    """

    store: CommandStore | None = None
    max_in_flight: int | None = None
    reply_share_group: str | None = None
    metrics: CommandMetrics | None = None
    sweep_interval: float = 1.0
    poll_max: float = 0.5
    tracer_provider: Any = None

    def __post_init__(self) -> None:
        for option, value in (("sweep_interval", self.sweep_interval), ("poll_max", self.poll_max)):
            if not value > 0:
                raise MQTTOptionsError(f"{option} must be above 0 seconds (got {value!r}).", {"option": option})
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise MQTTOptionsError(
                f"max_in_flight must be at least 1 or None (got {self.max_in_flight!r}).", {"option": "max_in_flight"}
            )


class CommandDispatcher:
    """Commands of one ``DeviceManager`` (its ``commands`` attribute's engine).

    Args:
        mqtt: The MQTT manager that publishes commands.
        topics: The device topic layout.
        instance_id: This manager's reply-topic level.
        options: Store, limits and telemetry.
        hook: Called on every transition this replica makes.
        get_device: Looks a device up (raises ``ResourceNotFoundError``).
        find_device: Looks a device up or returns None.
    """

    def __init__(
        self,
        mqtt: MQTTManager,
        topics: DeviceTopics,
        instance_id: str,
        options: CommandOptions,
        *,
        hook: CommandHook | None,
        get_device: Callable[[str], Awaitable[Device]],
        find_device: Callable[[str], Awaitable[Device | None]],
    ) -> None:
        self.mqtt = mqtt
        self.topics = topics
        self.instance_id = instance_id
        self.options = options
        self.store: CommandStore = options.store if options.store is not None else InMemoryCommandStore()
        self.telemetry = CommandTelemetry(options.metrics, tracer_provider=options.tracer_provider)
        self._hook = hook
        self._get_device = get_device
        self._find_device = find_device
        self._events: dict[str, asyncio.Event] = {}

    @property
    def replies_filter(self) -> str:
        """The subscription of this manager's replies (shared when ``reply_share_group`` is set)."""
        plain = self.topics.replies_filter(self.instance_id)
        group = self.options.reply_share_group
        return f"$share/{group}/{plain}" if group else plain

    # ------------------------------------------------------------------ submit
    async def submit(
        self,
        device_id: str,
        command: str,
        params: dict[str, Any] | None,
        *,
        timeout: float,  # noqa: ASYNC109 - seconds the device has to answer once sent
        deliver_when_online: bool = False,
        expires_in: float | None = None,
        idempotency_key: str | None = None,
        send_when_offline: bool = False,
    ) -> Command:
        """Store a command and send it (or keep it queued); see ``DeviceManager.submit_command``."""
        device = await self._get_device(device_id)
        now = time.time()
        cmd = Command(device_id, command, dict(params or {}), correlation_id=get_correlation_id(), timeout=timeout)
        cmd.deliver_when_online, cmd.idempotency_key = deliver_when_online, idempotency_key
        if deliver_when_online:
            cmd.expires_at = now + (timeout if expires_in is None else expires_in)
        cmd.move("queued", at=now)
        self.telemetry.begin(cmd)  # before the store: the record carries the span's trace context
        try:
            stored, created = await self.store.create(cmd, max_in_flight=self.options.max_in_flight)
        except BaseException:
            self.telemetry.forget(cmd.command_id)
            raise
        if not created:
            self.telemetry.forget(cmd.command_id)  # an earlier request's command: its span is elsewhere
            return stored
        await self._notify(stored)
        if device.status == "offline" and not send_when_offline:
            if deliver_when_online:
                return stored
            failed = await self._move(stored, "failed", error={"code": DeviceOfflineError.error_code})
            raise DeviceOfflineError(
                f"Device '{device_id}' is offline; retry later or send with deliver_when_online=True.",
                {"device_id": device_id, "command": command, "command_id": (failed or stored).command_id},
            )
        return await self.dispatch(stored)

    async def dispatch(self, cmd: Command) -> Command:
        """Claim a queued command (``sent``) and publish it; return it as it now stands.

        Raises:
            PublishError: The broker refused it (the command is then ``failed``).
        """
        now = time.time()
        claimed = await self._move(cmd, "sent", only_from={"queued"}, deadline=now + cmd.timeout)
        if claimed is None:
            return await self.store.get(cmd.command_id) or cmd
        reply_to = self.topics.replies(cmd.device_id, self.instance_id)
        payload = command_payload(
            cmd.command_id, cmd.command, cmd.params, reply_to=reply_to, expires_at=int((claimed.deadline or now) * 1000)
        )
        try:
            with correlation_of(cmd), self.telemetry.current(cmd):
                await self.mqtt.publish(
                    self.topics.commands(cmd.device_id),
                    payload,
                    qos=1,
                    properties={"response_topic": reply_to, "correlation_data": cmd.command_id.encode()},
                )
        except Exception as exc:
            await self._move(claimed, "failed", only_from=_LIVE, error={"code": "PUBLISH_FAILED", "message": str(exc)})
            raise
        return claimed

    # ------------------------------------------------------------------ outcome
    async def on_reply(self, command_id: str, device_id: str, status: str, value: Any) -> tuple[str, str] | None:
        """Record a reply (``ok`` / ``error`` / ``received``) of ``device_id`` that reached this replica.

        Returns:
            None when the reply was taken, else ``(reason, detail)`` for the dead letter: a
            command id the store does not hold or whose command already finished (a second
            copy; ``unknown_command``), or one that was sent to another device than the
            reply topic names (``wrong_device``). A refused reply changes no command; a reply
            after a timeout is kept as the command's ``late_reply``.
        """
        cmd = await self.store.get(command_id)
        if cmd is None:
            return "unknown_command", "no command with that id was sent"
        if cmd.device_id != device_id:
            return "wrong_device", "the command was sent to another device"
        if status == "received":
            await self._move(cmd, "delivered", only_from={"sent"})
            return None
        ok = status == "ok"
        changes = {"result": value} if ok else {"error": value}
        if await self._move(cmd, "succeeded" if ok else "failed", only_from=_LIVE, **changes) is not None:
            return None
        current = await self.store.get(command_id)
        if current is not None and current.state == "timed_out":
            await self._late(command_id, ok, value)  # kept beside the timeout, for a later GET
            return None
        return "unknown_command", "the command is no longer outstanding (it already finished)"

    async def _late(self, command_id: str, ok: bool, value: Any) -> None:
        for _ in range(5):
            cmd = await self.store.get(command_id)
            if cmd is None or cmd.state != "timed_out" or cmd.late_reply is not None:
                return
            expected = cmd.version
            cmd.late_reply = {"ok": ok, "value": value, "at": time.time()}
            if await self.store.replace(cmd, expected):
                logger.info("late reply recorded for timed-out command %s", command_id)
                event = self._events.get(command_id)
                if event is not None:
                    event.set()
                return

    async def cancel(self, command_id: str) -> Command:
        """Cancel a queued command.

        Raises:
            ResourceNotFoundError: No such command.
            CommandNotCancellableError: It was already sent or finished.
        """
        cmd = await self.get(command_id)
        cancelled = await self._move(cmd, "cancelled", only_from={"queued"}, error={"code": "CANCELLED"})
        if cancelled is not None:
            return cancelled
        current = await self.get(command_id)
        raise CommandNotCancellableError(
            f"Command '{command_id}' is {current.state}; only a queued command can be cancelled.",
            {"command_id": command_id, "state": current.state},
        )

    async def get(self, command_id: str) -> Command:
        """Return a stored command.

        Raises:
            ResourceNotFoundError: No such command.
        """
        cmd = await self.store.get(command_id)
        if cmd is None:
            raise ResourceNotFoundError("Command", command_id)
        return cmd

    async def wait(self, command_id: str, timeout: float | None = None) -> Command:  # noqa: ASYNC109 - seconds
        """Wait until the command finished or ``timeout`` seconds passed; return it as it stands."""
        local_end = None if timeout is None else time.monotonic() + timeout
        event = self._events.setdefault(command_id, asyncio.Event())
        delay = 0.05
        try:
            while True:
                cmd = await self.enforce(await self.get(command_id))
                if cmd.done:
                    self.telemetry.finish(cmd)
                    return cmd
                now = time.time()
                pause = delay
                moment = cmd.deadline if cmd.state in _LIVE else cmd.expires_at
                if moment is not None:
                    pause = min(pause, max(moment - now, 0.0) + 0.001)
                if local_end is not None:
                    left = local_end - time.monotonic()
                    if left <= 0:
                        return cmd
                    pause = min(pause, left)
                event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), pause)
                delay = min(delay * 2, self.options.poll_max)
        finally:
            self._events.pop(command_id, None)

    async def enforce(self, cmd: Command) -> Command:
        """Apply a passed deadline (``timed_out``) or expiry (``expired``) to ``cmd``; return it as it stands."""
        now = time.time()
        moved: Command | None = None
        if cmd.state in _LIVE and cmd.deadline is not None and now >= cmd.deadline:
            moved = await self._move(cmd, "timed_out", only_from=_LIVE, error={"code": "COMMAND_TIMEOUT"})
        elif cmd.state == "queued" and cmd.expires_at is not None and now >= cmd.expires_at:
            moved = await self._move(cmd, "expired", only_from={"queued"}, error={"code": "COMMAND_EXPIRED"})
        else:
            return cmd
        return moved or await self.get(cmd.command_id)

    # ------------------------------------------------------------------ background
    async def device_online(self, device_id: str) -> None:
        """Send the queued ``deliver_when_online`` commands of a device that just came online."""
        for cmd in await self.store.open_commands(device_id):
            if cmd.state == "queued" and cmd.deliver_when_online:
                await self._dispatch_quietly(await self.enforce(cmd))

    async def sweep(self) -> None:
        """One pass: deadlines, expiries, queued commands of online devices, spans of finished commands."""
        open_ids: set[str] = set()
        for found in await self.store.open_commands():
            open_ids.add(found.command_id)
            cmd = await self.enforce(found)
            if cmd.state == "queued" and cmd.deliver_when_online:
                device = await self._find_device(cmd.device_id)
                if device is not None and device.status == "online":
                    await self._dispatch_quietly(cmd)
        for command_id in self.telemetry.open_ids() - open_ids:
            finished = await self.store.get(command_id)
            if finished is not None and finished.done:
                self.telemetry.finish(finished)

    async def run_sweeper(self) -> None:
        """Sweep every ``sweep_interval`` seconds until cancelled (a failure is logged, the loop goes on)."""
        while True:
            await asyncio.sleep(self.options.sweep_interval)
            try:
                await self.sweep()
            except Exception:
                logger.exception("command sweep failed; retrying in %s s", self.options.sweep_interval)

    async def _dispatch_quietly(self, cmd: Command) -> None:
        if cmd.state != "queued":
            return
        with correlation_of(cmd):
            try:
                await self.dispatch(cmd)
            except Exception:
                logger.exception("queued command %s could not be sent", cmd.command_id)

    # ------------------------------------------------------------------ transitions
    async def _move(
        self, cmd: Command, state: CommandState, *, only_from: set[str] | frozenset[str] | None = None, **changes: Any
    ) -> Command | None:
        """Compare-and-set ``cmd`` into ``state``; None if another writer moved it out of ``only_from``."""
        allowed = only_from if only_from is not None else {cmd.state}
        current: Command | None = cmd
        for _ in range(10):
            if current is None or current.state not in allowed:
                return None
            expected = current.version
            updated = Command.from_dict(current.to_dict())
            for name, value in changes.items():
                setattr(updated, name, value)
            updated.move(state)
            if await self.store.replace(updated, expected):
                await self._notify(updated)
                return updated
            current = await self.store.get(cmd.command_id)
        return None

    async def _notify(self, cmd: Command) -> None:
        with correlation_of(cmd):
            await self._notify_now(cmd)

    async def _notify_now(self, cmd: Command) -> None:
        self.telemetry.record(cmd)
        event = self._events.get(cmd.command_id)
        if event is not None and cmd.done:
            event.set()
        if self._hook is None:
            return
        try:
            result = self._hook(cmd)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("command hook failed for %s", cmd.command_id)
