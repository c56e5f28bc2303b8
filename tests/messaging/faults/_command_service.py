"""A service process for the command restart tests: DeviceManager over the SQL command store.

``python _command_service.py <mode> <broker port> <database url> <topic root> <client id>``

* ``submit <device>``: register the device, send ``ping`` (timeout 60 s), print ``ID <id>``, idle.
* ``queue <device>``: register the device, wait until it is offline, submit with
  ``deliver_when_online=True``, print ``ID <id>``, idle.
* ``serve <device>``: register the device and idle (replies and queued commands are handled).

It prints ``READY`` once started and idles until killed (SIGKILL, in the tests).
"""

from __future__ import annotations

import asyncio
import sys

from energy_common.database import Database
from energy_messaging import DeviceManager, MQTTManager
from energy_messaging.devices import CommandOptions
from energy_messaging.sql_commands import SQLCommandStore


async def main(argv: list[str]) -> None:
    """Run the service until the process is killed."""
    mode, port, url, root, client_id, device_id = argv
    db = Database(url)
    store = SQLCommandStore(db)
    await store.create_table()
    async with MQTTManager("127.0.0.1", int(port), client_id=client_id) as mqtt:
        devices = DeviceManager(
            mqtt, topic_root=root, instance_id="svc", commands=CommandOptions(store=store, sweep_interval=0.2)
        )
        await devices.register_device(device_id, "meter")
        print("READY", flush=True)
        if mode == "queue":
            for _ in range(1500):  # the retained offline status arrives right after the subscribe
                if (await devices.get_device(device_id)).status == "offline":
                    break
                await asyncio.sleep(0.02)
        if mode in ("submit", "queue"):
            cmd = await devices.submit_command(
                device_id, "ping", timeout=60, deliver_when_online=mode == "queue", expires_in=60
            )
            print(f"ID {cmd.command_id} {cmd.state}", flush=True)
        await asyncio.sleep(120)  # bounded: the test kills it long before


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:7]))
