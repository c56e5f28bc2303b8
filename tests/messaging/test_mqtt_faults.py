"""Fault tests: broker restarts and a crashed consumer lose no QoS 1 message (private Mosquitto)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from energy_messaging import MQTTManager, MQTTMessage

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

# As root, mosquitto drops to its own user and could not write the temporary persistence
# directory; autosave_on_changes with interval 1 saves after every queued message.
BROKER_CONFIG = ["autosave_on_changes true"]


async def wait_until(condition: Callable[[], bool], limit: float, what: Callable[[], str]) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``limit`` seconds."""
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        if condition():
            return
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what()}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_broker_restart_during_qos1_stream_loses_nothing(
    mosquitto_factory: Callable[..., Any],
    how: str,
) -> None:
    """Stopping (SIGTERM) or killing (SIGKILL) and restarting Mosquitto mid-stream loses none of 5,000 QoS 1 messages."""
    broker = mosquitto_factory(BROKER_CONFIG)
    total = 5_000
    received: set[int] = set()

    async def handler(message: MQTTMessage) -> None:
        received.add(message.payload["n"])

    options: dict[str, Any] = {"reconnect_min_delay": 0.05, "reconnect_max_delay": 0.5}
    async with (
        MQTTManager(broker.host, broker.port, client_id="fault-sub", **options) as sub,
        MQTTManager(broker.host, broker.port, client_id="fault-pub", max_buffered_publishes=total, **options) as pub,
    ):
        await sub.subscribe("fault/stream", handler, qos=1)
        for n in range(total):
            await pub.publish("fault/stream", {"n": n}, qos=1, wait=False)
            await asyncio.sleep(0)  # a steady stream: the loop sends and receives while we produce
            if n == total // 3:
                await asyncio.to_thread(broker.stop if how == "stop" else broker.kill)
                await asyncio.to_thread(broker.start)
        await wait_until(
            lambda: len(received) == total,
            40,
            lambda: f"{total} messages; missing {sorted(set(range(total)) - received)[:20]}: {sub.state} {pub.state}",
        )
        assert sub.state.reconnect_count >= 1
        assert pub.state.reconnect_count >= 1
    assert received == set(range(total))


CONSUMER = textwrap.dedent(
    """
    import asyncio, sys
    from energy_messaging import MQTTManager

    async def main(port: int, out: str) -> None:
        log = open(out, "a", buffering=1)

        async def handler(message):
            await asyncio.sleep(0.001)  # some work, so the crash lands mid-stream
            log.write(f"{message.payload['n']}\\n")  # written before the handler returns (and the ack)

        mqtt = MQTTManager("127.0.0.1", port, client_id="crash-consumer", handler_concurrency=4)
        await mqtt.subscribe("crash/stream", handler, qos=1)
        await mqtt.connect()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
    """
)


def start_consumer(script: Path, port: int, out: Path) -> subprocess.Popen[str]:
    """Start the consumer process and wait until it is subscribed."""
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the consumer, as a crash would, and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


async def test_killed_consumer_gets_unfinished_messages_again(
    mosquitto_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """A consumer killed with SIGKILL mid-stream and restarted with its session handles every message."""
    broker = mosquitto_factory(BROKER_CONFIG)
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)
    out = tmp_path / "handled.txt"
    out.touch()
    total = 3_000

    def handled() -> list[int]:
        return [int(line) for line in out.read_text().split()]

    consumer = await asyncio.to_thread(start_consumer, script, broker.port, out)
    try:
        async with MQTTManager(broker.host, broker.port, max_buffered_publishes=total) as pub:
            for n in range(total):
                await pub.publish("crash/stream", {"n": n}, qos=1, wait=False)
                if n % 100 == 99:
                    await asyncio.sleep(0)
            await wait_until(lambda: len(handled()) >= total // 4, 30, lambda: "the consumer to get going")
            kill(consumer)
            before = set(handled())
            assert len(before) < total, "the crash must land mid-stream"
            consumer = await asyncio.to_thread(start_consumer, script, broker.port, out)
            await wait_until(lambda: set(handled()) == set(range(total)), 45, lambda: "every message after the restart")
    finally:
        kill(consumer)
