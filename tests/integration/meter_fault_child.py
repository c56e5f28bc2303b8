"""Child processes of the meter fault test: one service replica, or an unpaced publisher.

    python meter_fault_child.py replica SETTINGS_JSON KILL_AFTER_BATCH PREFIX METERS
    python meter_fault_child.py publish HOST PORT ROOT PREFIX METERS ROUNDS

The replica prints ``ready``, then on SIGTERM its counters as JSON. With
``KILL_AFTER_BATCH`` > 0 it SIGKILLs itself right after that batch is committed and
before its handlers return, so the PUBACKs of a stored batch never go out: the broker
redelivers readings that are already stored (the duplicate-suppression path).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any


def replica(settings_json: str, kill_after: int, prefix: str, meters: int) -> None:
    """Run one replica until SIGTERM (or its own SIGKILL after batch ``kill_after``); meters PREFIX000.. registered."""
    from energy_common.logging import setup_logging
    from energy_messaging.devices import Device
    from meter_service import MeterRuntime, MeterSettings

    setup_logging("meter-fault", log_level="WARNING")
    settings = MeterSettings(**json.loads(settings_json))

    async def main() -> dict[str, Any]:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        runtime = MeterRuntime(settings)
        # Only registered meters' telemetry is stored, and the resumed session delivers at
        # once: register (in this replica's in-memory registry) before it connects.
        for i in range(meters):
            await runtime.devices.registry.add(Device(f"{prefix}{i:03d}", "meter"))
        async with runtime:
            ingestor = runtime.ingestor
            store = ingestor._store  # the fault injection point: right after the commit
            batches = 0

            async def store_then_maybe_die(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
                nonlocal batches
                stored = await store(rows)
                batches += 1
                if batches == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                return stored

            ingestor._store = store_then_maybe_die  # type: ignore[method-assign]
            print("ready", flush=True)
            await stop.wait()
            stats = ingestor.stats
            return {"stored": stats.stored, "duplicates": stats.duplicates, "batches": stats.batches}

    print(json.dumps(asyncio.run(main())), flush=True)


def publish(host: str, port: int, root: str, prefix: str, *, meters: int, rounds: int) -> None:
    """Publish ``meters`` x ``rounds`` readings like a fleet: MQTT 5, QoS 1, 100 in flight, unpaced."""
    import paho.mqtt.client as paho

    acked = 0

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        acked += 1

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{prefix}pub", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()
    base = int(time.time() * 1000) - rounds
    total = meters * rounds
    for i in range(total):
        payload = f'{{"ts":{base + i // meters},"power_w":{i % 5000}.5,"voltage_v":230.0}}'
        client.publish(f"{root}/{prefix}{i % meters:03d}/telemetry", payload, qos=1)
    deadline = time.monotonic() + 120
    while acked < total and time.monotonic() < deadline:
        time.sleep(0.01)
    client.loop_stop()
    client.disconnect()
    print(json.dumps({"published": total, "acked": acked}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "replica":
        replica(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else:
        publish(
            sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], meters=int(sys.argv[6]), rounds=int(sys.argv[7])
        )
