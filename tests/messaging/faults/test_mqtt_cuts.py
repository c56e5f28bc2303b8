"""Connections cut again and again mid-stream lose no acknowledged publish (loopback TCP proxy).

Publisher and consumer both reach a private Mosquitto through a proxy the test controls;
the test resets every connection through it several times while QoS 1 messages flow in
both directions (PUBLISH to the broker, PUBLISH to the consumer, PUBACKs both ways).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from energy_messaging.mqtt import MQTTManager, MQTTMessage

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

TOTAL = 2_000
CUTS = 4
WINDOW = 50  # publishes awaiting their PUBACK at once


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_cut_connections_lose_no_acknowledged_publish(
    private_broker: Callable[..., Any],
    tcp_proxy: Callable[..., Any],
    poll: Callable[..., Any],
    protocol: str,
    unique: str,
) -> None:
    """Four cuts of both connections mid-stream (two with a 1 s outage): every acknowledged publish is received."""
    broker = private_broker()
    proxy = await tcp_proxy(broker.host, broker.port)
    options: dict[str, Any] = {"protocol": protocol, "reconnect_min_delay": 0.05, "reconnect_max_delay": 0.5}
    received: set[int] = set()
    acked: set[int] = set()
    failed: list[tuple[int, BaseException]] = []

    async def handler(message: MQTTMessage) -> None:
        received.add(message.payload["n"])

    def report() -> str:
        lost = sorted(acked - received)
        return (
            f"{len(acked)} acknowledged, {len(received & acked)} of them received, lost {len(lost)} "
            f"(first {lost[:10]}), {len(failed)} failed {failed[:3]}; cuts {proxy.cuts}; "
            f"consumer {sub.state}; publisher {pub.state}"
        )

    sub = MQTTManager(proxy.host, proxy.port, client_id=f"cut-sub-{unique}", **options)
    pub = MQTTManager(proxy.host, proxy.port, client_id=f"cut-pub-{unique}", max_buffered_publishes=TOTAL, **options)
    await sub.subscribe("cut/stream", handler, qos=1)
    async with sub, pub:
        window = asyncio.Semaphore(WINDOW)

        async def publish(n: int) -> None:
            try:
                async with asyncio.timeout(90):
                    await pub.publish("cut/stream", {"n": n}, qos=1)
                acked.add(n)
            except Exception as exc:  # noqa: BLE001 - reported below, the test fails on any
                failed.append((n, exc))
            finally:
                window.release()

        async def produce() -> None:
            async with asyncio.TaskGroup() as group:
                for n in range(TOTAL):
                    await window.acquire()
                    group.create_task(publish(n))

        producer = asyncio.create_task(produce())
        try:
            for cut in range(1, CUTS + 1):
                # Cut once the stream is well under way again, with both clients connected.
                await poll(
                    lambda c=cut: len(acked) >= c * TOTAL // (CUTS + 2) and proxy.open_links == 2,
                    60,
                    lambda: f"progress before cut {proxy.cuts + 1}: {report()}",
                    progress=lambda: (len(acked), len(received)),
                )
                if cut % 2 == 0:
                    await proxy.shut()  # this time the way back stays shut for a while
                assert proxy.cut() == 2
                if cut % 2 == 0:
                    await poll(
                        lambda: not sub.state.connected and not pub.state.connected, 30, lambda: f"the cut: {report()}"
                    )
                    await asyncio.sleep(1.0)  # the outage: both retry (refused) and wait
                    await proxy.reopen()
            async with asyncio.timeout(120):
                await producer
        finally:
            producer.cancel()
        await poll(lambda: acked <= received, 60, report, progress=lambda: len(received))
        assert failed == [], report()
        assert acked == set(range(TOTAL)), report()
        assert sub.state.reconnect_count >= CUTS, report()
        assert pub.state.reconnect_count >= CUTS, report()
