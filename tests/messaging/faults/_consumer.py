"""The consumer process of the fault tests: one MQTTManager, recording what it handled (run by path).

``python _consumer.py '<json config>'`` (see ``ConsumerProcess`` in this folder's
conftest). Each handled message and each dead letter is one tab-separated line written
with a single unbuffered ``os.write`` before the handler returns, so before the ack: the
kernel keeps it when the process is SIGKILLed. ``state.to_dict()`` goes to a JSON file
every 50 ms. Prints ``connected`` once ``connect()`` returned and ``ready`` once the
handlers are registered as well.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from energy_messaging.mqtt import DeadLetter, MQTTManager, MQTTMessage


async def main(cfg: dict[str, Any]) -> None:
    """Connect and register in the configured order, then consume until killed."""
    fd = os.open(cfg["out"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def record(*fields: str) -> None:
        os.write(fd, ("\t".join(fields) + "\n").encode())

    def handler_for(name: str) -> Any:
        async def handler(message: MQTTMessage) -> None:
            if cfg["work"]:
                await asyncio.sleep(cfg["work"])
            record("handled", name, message.topic, message.raw.decode("utf-8", "replace"))

        return handler

    def dead_letter(letter: DeadLetter) -> None:
        record("dead", letter.reason, letter.topic, letter.raw.decode("utf-8", "replace"))

    mqtt = MQTTManager(
        "127.0.0.1",
        cfg["port"],
        client_id=cfg["client_id"],
        handler_concurrency=cfg["concurrency"],
        reconnect_min_delay=0.05,
        reconnect_max_delay=0.5,
        on_dead_letter=dead_letter,
    )

    async def register() -> None:
        for name, topic_filter in cfg["filters"]:
            if cfg["api"] == "on":
                mqtt.on(topic_filter, qos=1)(handler_for(name))
            else:
                await mqtt.subscribe(topic_filter, handler_for(name), qos=1)

    async def write_state() -> None:
        state_path = Path(cfg["state"])
        scratch = state_path.with_suffix(".tmp")
        while True:
            scratch.write_text(json.dumps(mqtt.state.to_dict()))
            scratch.replace(state_path)
            await asyncio.sleep(0.05)

    writer = asyncio.create_task(write_state(), name="consumer-state-writer")
    if cfg["order"] == "connect-first":  # the seed's order
        await mqtt.connect()
        print("connected", flush=True)
        if cfg["register_delay"]:
            await asyncio.sleep(cfg["register_delay"])  # the application is still starting up
        await register()
    else:
        await register()
        await mqtt.connect()
        print("connected", flush=True)
    print("ready", flush=True)
    await writer


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
