"""No silent task death: every task is named, owned, cancelled on exit, and its failure lands in the log and state."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from energy_messaging.errors import MessagingError
from energy_messaging.mqtt import MQTTManager, MQTTMessage
from energy_messaging.mqtt._tasks import Status, Tasks

WaitUntil = Callable[..., Awaitable[None]]


DYNSEC = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")


def refusing_subscriptions(tmp_path: Path) -> list[str]:
    """Mosquitto config lines (dynamic-security plugin) that refuse every subscription outside ``allowed/#``."""
    if not DYNSEC.exists():
        reason = f"the Mosquitto dynamic-security plugin is not at {DYNSEC}"
        if os.environ.get("ENERGY_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    config = {
        "defaultACLAccess": {"publishClientSend": True, "publishClientReceive": True, "subscribe": False},
        "clients": [],
        "groups": [{"groupname": "anonymous", "roles": [{"rolename": "reader"}]}],
        "roles": [
            {"rolename": "reader", "acls": [{"acltype": "subscribePattern", "topic": "allowed/#", "allow": True}]}
        ],
        "anonymousGroup": "anonymous",
    }
    path = tmp_path / "dynamic-security.json"
    path.write_text(json.dumps(config))
    return [f"plugin {DYNSEC}", f"plugin_opt_config_file {path}"]


async def test_a_failing_task_is_logged_with_its_name_and_recorded(caplog: pytest.LogCaptureFixture) -> None:
    """A task that raises is logged with its full name and its error is put in ``Status.last_error``."""
    status = Status()
    tasks = Tasks(status, "energy-mqtt-t1")
    exits: list[str] = []

    async def boom() -> None:
        raise RuntimeError("kaput")

    with caplog.at_level(logging.ERROR, logger="energy_messaging.mqtt"):
        task = tasks.spawn(boom(), "worker-3", on_exit=lambda t: exits.append(t.get_name()))
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
    assert task.get_name() == "energy-mqtt-t1-worker-3"
    assert status.last_error == "task energy-mqtt-t1-worker-3 failed: RuntimeError: kaput"
    assert any("energy-mqtt-t1-worker-3" in record.getMessage() for record in caplog.records)
    assert exits == ["energy-mqtt-t1-worker-3"]
    assert len(tasks) == 0


async def test_cancel_all_cancels_and_waits_without_reporting_errors() -> None:
    """cancel_all cancels every owned task (but those kept) and returns once they ended; cancellation is no failure."""
    status = Status()
    tasks = Tasks(status, "p")
    long = tasks.spawn(asyncio.sleep(60), "long")
    kept = tasks.spawn(asyncio.sleep(60), "kept")
    assert tasks.names == ["p-kept", "p-long"]
    await tasks.cancel_all(keep=lambda task: task is kept)
    assert long.cancelled()
    assert not kept.done()
    await tasks.cancel_all()
    assert kept.cancelled()
    assert status.last_error is None
    assert len(tasks) == 0


async def test_manager_tasks_are_named_and_gone_after_disconnect(make_manager: Callable[..., MQTTManager]) -> None:
    """While connected the state lists the supervisor and each handler worker by name; after disconnect none is left."""
    manager = make_manager(client_id="tasks-named", handler_concurrency=3)
    async with manager:
        names = manager.state.tasks
        assert "energy-mqtt-tasks-named-supervisor" in names
        assert {f"energy-mqtt-tasks-named-handler-{n}" for n in range(3)} <= set(names)
    assert manager.state.tasks == ()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("energy-mqtt-tasks-named")]


async def test_failing_on_connect_hook_is_reported_and_the_manager_keeps_working(
    make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str, wait_until: WaitUntil
) -> None:
    """An on_connect hook that raises is logged with the task name, shown in ``last_error``; messages still flow."""

    def hook() -> None:
        raise ValueError("hook broke")

    got: list[Any] = []

    async def handler(message: MQTTMessage) -> None:
        got.append(message.payload)

    async with make_manager(on_connect=hook) as mqtt:
        await wait_until(lambda: mqtt.state.last_error is not None, 5)
        assert "on-connect failed: ValueError: hook broke" in (mqtt.state.last_error or "")
        await mqtt.subscribe(f"{mqtt_topic_prefix}/after", handler)
        await mqtt.publish(f"{mqtt_topic_prefix}/after", {"n": 1})
        await wait_until(lambda: got == [{"n": 1}], 5)
        assert mqtt.is_connected


async def test_refused_subscription_of_on_while_connected_is_reported(
    mosquitto_factory: Callable[..., Any], tmp_path: Path, wait_until: WaitUntil, caplog: pytest.LogCaptureFixture
) -> None:
    """``on()`` while connected subscribes in a named task; the broker's refusal is logged and put in ``last_error``."""
    broker = mosquitto_factory(refusing_subscriptions(tmp_path))

    async def handler(message: MQTTMessage) -> None:
        """Never called."""

    with caplog.at_level(logging.ERROR, logger="energy_messaging.mqtt"):
        async with MQTTManager(broker.host, broker.port) as mqtt:
            mqtt.on("denied/#")(handler)
            await wait_until(lambda: mqtt.state.last_error is not None, 10)
            assert "denied/#" in (mqtt.state.last_error or "")
            assert "refused the subscription" in (mqtt.state.last_error or "")
            assert mqtt.is_connected
            with pytest.raises(MessagingError, match="refused the subscription"):
                await mqtt.subscribe("denied/again", handler)  # the awaited form raises instead
            assert mqtt.state.subscriptions == 1  # the refused subscribe() was removed again; on() keeps its route
    assert any("denied/#" in record.getMessage() for record in caplog.records)
