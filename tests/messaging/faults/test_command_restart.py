"""A service process SIGKILLed after accepting a command, before the reply: restarted, it knows and finishes it.

The service (``_command_service.py``) keeps its commands in PostgreSQL (``SQLCommandStore``)
and its MQTT session (stable client id); the meter is played by the test, which holds
the command, lets the service die, and replies or comes online while it is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from energy_common.database import Database
from energy_messaging import Command, MQTTManager, MQTTMessage
from energy_messaging.devices import reply_payload, status_payload
from energy_messaging.sql_commands import SQLCommandStore

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

PROGRAM = Path(__file__).with_name("_command_service.py")


class Service:
    """The service process: started, read line by line, SIGKILLed."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.process: subprocess.Popen[str] | None = None

    async def start(self, mode: str) -> None:
        """Start it in ``mode`` and wait for its READY line."""
        argv = [sys.executable, str(PROGRAM), mode, *self.argv]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env={**os.environ})  # noqa: ASYNC220 - returns at once
        assert await self.line() == "READY"

    async def line(self, within: float = 30.0) -> str:
        """The next line it printed (fails after ``within`` seconds)."""
        assert self.process is not None
        assert self.process.stdout is not None
        return (await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), within)).strip()

    def kill(self) -> None:
        """SIGKILL, as a crash would, and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[SQLCommandStore]:
    """The command store on the session's PostgreSQL, as the service sees it."""
    db = Database(postgres_url)
    sql = SQLCommandStore(db)
    await sql.create_table()
    yield sql
    await db.dispose()


@pytest.fixture
def service(mqtt_broker: Any, postgres_url: str, mqtt_topic_prefix: str) -> Callable[[str], Service]:
    """Make the service of a test (one client id, so its MQTT session survives the kill); killed afterwards."""
    made: list[Service] = []

    def make(device_id: str) -> Service:
        client_id = f"svc-{uuid.uuid4().hex[:8]}"
        made.append(
            Service([str(mqtt_broker.port), postgres_url, f"{mqtt_topic_prefix}/devices", client_id, device_id])
        )
        return made[-1]

    yield make  # type: ignore[misc]
    for item in made:
        item.kill()


async def meter_side(mqtt: MQTTManager, root: str, device_id: str) -> list[dict[str, Any]]:
    """The meter: record every command it gets (replies are up to the test)."""
    got: list[dict[str, Any]] = []

    async def record(message: MQTTMessage) -> None:
        got.append(message.payload)

    await mqtt.subscribe(f"{root}/{device_id}/commands", record)
    return got


async def state_of(store: SQLCommandStore, command_id: str, wanted: str, within: float = 20.0) -> Command:
    """Poll the store until the command is in ``wanted``; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        cmd = await store.get(command_id)
        if cmd is not None and cmd.state == wanted:
            return cmd
        if time.monotonic() > deadline:
            pytest.fail(f"command {command_id} is {cmd.state if cmd else None}, not {wanted}, after {within} s")
        await asyncio.sleep(0.05)


async def test_killed_after_send_restarts_and_records_the_late_reply(
    mqtt_broker: Any, mqtt_topic_prefix: str, store: SQLCommandStore, service: Callable[[str], Service]
) -> None:
    """Killed between send and reply: the store says sent; the reply given meanwhile is recorded after the restart; no resend."""
    root = f"{mqtt_topic_prefix}/devices"
    svc = service("m1")
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port) as meter:
        got = await meter_side(meter, root, "m1")
        await svc.start("submit")
        _, command_id, state = (await svc.line()).split()
        assert state == "sent"
        for _ in range(500):
            if got:
                break
            await asyncio.sleep(0.01)
        svc.kill()
        assert (await state_of(store, command_id, "sent")).deadline is not None
        assert [payload["id"] for payload in got] == [command_id]
        await meter.publish(got[0]["reply_to"], reply_payload(command_id, result={"pong": True}), qos=1)
        await svc.start("serve")
        done = await state_of(store, command_id, "succeeded")
        await asyncio.sleep(1.0)  # several sweeps of the restarted service
        assert [payload["id"] for payload in got] == [command_id], "nothing is sent twice"
    assert done.result == {"pong": True}
    assert [name for name, _ in done.history] == ["queued", "sent", "succeeded"]


async def test_queued_command_survives_a_kill_and_is_delivered_once_online(
    mqtt_broker: Any, mqtt_topic_prefix: str, store: SQLCommandStore, service: Callable[[str], Service]
) -> None:
    """A deliver_when_online command accepted before a SIGKILL is sent once, by the restarted service, when the meter comes online."""
    root = f"{mqtt_topic_prefix}/devices"
    svc = service("m2")
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port) as meter:
        got = await meter_side(meter, root, "m2")
        await meter.publish(f"{root}/m2/status", status_payload("offline", 1), qos=1, retain=True)
        await svc.start("queue")
        _, command_id, state = (await svc.line()).split()
        assert state == "queued"
        svc.kill()
        await svc.start("serve")
        await asyncio.sleep(0.5)
        assert got == []
        assert (await store.get(command_id)).state == "queued"  # type: ignore[union-attr]
        await meter.publish(f"{root}/m2/status", status_payload("online", 2), qos=1, retain=True)
        await state_of(store, command_id, "sent")
        for _ in range(500):
            if got:
                break
            await asyncio.sleep(0.01)
        await meter.publish(got[0]["reply_to"], reply_payload(command_id, result={"pong": True}), qos=1)
        await state_of(store, command_id, "succeeded")
        await asyncio.sleep(0.5)
        assert [payload["id"] for payload in got] == [command_id]
        with contextlib.suppress(Exception):
            await meter.publish(f"{root}/m2/status", b"", qos=1, retain=True)  # clear the retained status
