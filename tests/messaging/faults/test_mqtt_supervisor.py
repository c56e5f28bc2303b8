"""No silent task death: the supervisor outlives any exception, failures show in ``state.last_error``.

Faults come from things we do not ship: a Last Will factory and an ``on_connect`` hook
that raise, a broker whose ACL refuses a subscription (dynamic-security plugin), a proxy
that resets connections during the CONNECT.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from energy_messaging.errors import MessagingError
from energy_messaging.mqtt import LastWill, MQTTManager, MQTTMessage

pytestmark = [pytest.mark.mqtt]

FAST = {"reconnect_min_delay": 0.05, "reconnect_max_delay": 0.5}


def mentions(records: list[logging.LogRecord], text: str) -> list[logging.LogRecord]:
    """The WARNING+ records whose message or exception mentions ``text``."""
    return [
        r
        for r in records
        if r.levelno >= logging.WARNING
        and (text in r.getMessage() or (r.exc_info is not None and text in repr(r.exc_info[1])))
    ]


async def round_trip(manager: MQTTManager, broker: Any, topic: str, poll: Callable[..., Any]) -> None:
    """Publish to ``topic`` from another client until ``manager`` receives it (it must be subscribed)."""
    got: list[object] = []

    async def handler(message: MQTTMessage) -> None:
        got.append(message.payload)

    await manager.subscribe(topic, handler, qos=1)
    async with MQTTManager(broker.host, broker.port) as other:
        await other.publish(topic, {"ping": 1}, qos=1)
        await poll(lambda: got, 30, lambda: f"a message on {topic}: {manager.state}")


async def test_supervisor_survives_an_exception_and_reports_it(
    private_broker: Callable[..., Any],
    tcp_proxy: Callable[..., Any],
    poll: Callable[..., Any],
    messaging_logs: Any,
) -> None:
    """A Last Will factory raising RuntimeError on reconnects is reported in state and logged; the supervisor retries."""
    broker = private_broker()
    proxy = await tcp_proxy(broker.host, broker.port)
    failing = False
    calls = 0

    def will() -> LastWill:
        nonlocal calls
        calls += 1
        if failing:
            raise RuntimeError("will factory exploded")
        return LastWill("sup/status", {"online": False})

    manager = MQTTManager(proxy.host, proxy.port, will=will, **FAST)
    try:
        await manager.connect()
        failing = True
        proxy.cut()
        await poll(
            lambda: "will factory exploded" in (manager.state.last_error or ""),
            30,
            lambda: f"state.last_error to report the exception: {manager.state}",
        )
        failed_calls = calls
        await poll(lambda: calls >= failed_calls + 2, 30, lambda: f"the supervisor to keep retrying: {calls} calls")
        assert not manager.state.connected
        assert mentions(messaging_logs.records, "will factory exploded"), "the failure is logged"
        failing = False
        await poll(lambda: manager.state.connected, 30, lambda: f"the reconnect: {manager.state}")
        assert manager.state.reconnect_count >= 1
        await round_trip(manager, broker, "sup/after", poll)
    finally:
        await manager.disconnect()


async def test_failing_on_connect_hook_is_reported(
    mqtt_broker: Any,
    mqtt_topic_prefix: str,
    poll: Callable[..., Any],
    messaging_logs: Any,
    loop_errors: Any,
) -> None:
    """An ``on_connect`` hook that raises is logged and shows in state.last_error; the connection is unharmed."""

    async def hook() -> None:
        raise RuntimeError("on_connect hook exploded")

    async with MQTTManager(mqtt_broker.host, mqtt_broker.port, on_connect=hook) as manager:
        await poll(
            lambda: "on_connect hook exploded" in (manager.state.last_error or ""),
            30,
            lambda: f"state.last_error to report the hook's failure: {manager.state}",
        )
        assert mentions(messaging_logs.records, "on_connect hook exploded")
        assert manager.state.connected
        await round_trip(manager, mqtt_broker, f"{mqtt_topic_prefix}/after", poll)
    gc.collect()
    assert loop_errors.messages() == []


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_refused_subscription_made_by_on_while_connected_is_reported(
    acl_broker: Callable[..., Any],
    poll: Callable[..., Any],
    messaging_logs: Any,
    loop_errors: Any,
    protocol: str,
) -> None:
    """``on()`` while connected for a filter the broker's ACL refuses is logged and in state.last_error, not a lost task."""
    broker = acl_broker(["acl/allowed/#"])

    async def handler(message: MQTTMessage) -> None:
        pass

    async with MQTTManager(broker.host, broker.port, protocol=protocol) as manager:
        manager.on("acl/denied/#")(handler)
        await poll(
            lambda: "acl/denied/#" in (manager.state.last_error or ""),
            30,
            lambda: (
                f"state.last_error to name the refused filter: {manager.state}; loop errors {loop_errors.messages()}"
            ),
        )
        assert mentions(messaging_logs.records, "acl/denied/#"), "the refusal is logged"
        # The manager goes on: an allowed filter registered the same way works.
        got: list[object] = []

        async def allowed(message: MQTTMessage) -> None:
            got.append(message.payload)

        manager.on("acl/allowed/#")(allowed)
        for _ in range(150):  # on() subscribes in the background: publish until it is in place
            await manager.publish("acl/allowed/x", {"n": 1}, qos=1)
            await asyncio.sleep(0.2)
            if got:
                break
        assert got, f"the allowed subscription made by on() works: {manager.state}"
    gc.collect()
    await asyncio.sleep(0)
    assert [m for m in loop_errors.messages() if "never retrieved" in m] == []
    assert loop_errors.messages() == []


async def test_refused_subscription_by_subscribe_raises(acl_broker: Callable[..., Any]) -> None:
    """``await subscribe()`` for a filter the broker's ACL refuses raises MessagingError naming the filter."""
    broker = acl_broker(["acl/allowed/#"])

    async def handler(message: MQTTMessage) -> None:
        pass

    async with MQTTManager(broker.host, broker.port) as manager:
        with pytest.raises(MessagingError, match=re.escape("acl/denied/#")):
            await manager.subscribe("acl/denied/#", handler)
        await manager.subscribe("acl/allowed/#", handler)


@pytest.mark.slow
async def test_reset_during_connect_is_retried_at_once(
    private_broker: Callable[..., Any],
    tcp_proxy: Callable[..., Any],
    poll: Callable[..., Any],
) -> None:
    """A connection reset before the CONNACK is retried after the backoff delay, not after ``connect_timeout``."""
    broker = private_broker()
    proxy = await tcp_proxy(broker.host, broker.port)
    async with MQTTManager(proxy.host, proxy.port, connect_timeout=60, **FAST) as manager:
        proxy.refusing = True
        proxy.cut()
        await poll(lambda: proxy.refused >= 3, 30, lambda: f"three refused attempts ({proxy.refused}): {manager.state}")
        proxy.refusing = False
        # Retries come every <= 0.5 s; waiting out connect_timeout (60 s) per reset would miss this.
        await poll(lambda: manager.state.connected, 30, lambda: f"the reconnect: {manager.state}")


async def test_every_manager_task_is_named_and_ends_with_it(
    mqtt_broker: Any,
    mqtt_topic_prefix: str,
    poll: Callable[..., Any],
) -> None:
    """Every task a manager starts (supervisor, workers, background subscribe, dead letters) is named and gone after it."""
    before = asyncio.all_tasks()
    seen: dict[asyncio.Task[Any], str] = {}
    coroutines: dict[str, str] = {}
    letters: list[object] = []

    def sample() -> None:
        for task in asyncio.all_tasks() - before:
            seen[task] = task.get_name()
            coro = task.get_coro()
            coroutines[task.get_name()] = getattr(coro, "__qualname__", repr(coro))

    async def failing(message: MQTTMessage) -> None:
        raise RuntimeError("handler failed on purpose")

    manager = MQTTManager(
        mqtt_broker.host, mqtt_broker.port, on_dead_letter=letters.append, on_connect=lambda: None, **FAST
    )
    async with manager:
        sample()
        manager.on(f"{mqtt_topic_prefix}/#")(failing)  # subscribes in the background
        for _ in range(150):
            sample()
            await manager.publish(f"{mqtt_topic_prefix}/x", {"n": 1}, qos=1)
            await asyncio.sleep(0.2)
            sample()
            if letters:
                break
        assert letters, f"the handler error reached the dead letter: {manager.state}"
    unnamed = sorted(f"{name} ({coroutines[name]})" for name in seen.values() if re.fullmatch(r"Task-\d+", name))
    assert not unnamed, f"unnamed tasks: {unnamed}; all: {sorted(seen.values())}"
    left = sorted(name for task, name in seen.items() if not task.done())
    assert left == [], "tasks still running after the manager stopped"
