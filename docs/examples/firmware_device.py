"""A minimal device that speaks the platform's device protocol, in plain paho-mqtt.

The device-protocol page of the documentation shows this file in parts;
``tests/docs/test_device_protocol.py`` runs it against Mosquitto with a real
``DeviceManager`` on the platform side, over MQTT 5 and MQTT 3.1.1, so the page cannot
drift from what the platform does. Firmware in C or Rust does the same steps with its
own MQTT client.

    python docs/examples/firmware_device.py meter-17 --mqtt 3.1.1   # until Ctrl-C
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def now_ms() -> int:
    """The protocol's ``ts``: epoch milliseconds."""
    return time.time_ns() // 1_000_000


class Device:
    """One meter: status with a sequence number, telemetry, commands and replies.

    Args:
        device_id: The device id, one topic level (no ``+``, ``#``, ``/``).
        host: The broker.
        port: Its port.
        mqtt5: MQTT 5 (response topic, correlation data) or MQTT 3.1.1 (fields in the payload).
        root: The topic root the platform is configured with.
    """

    # --8<-- [start:connect]
    def __init__(
        self, device_id: str, host: str, port: int = 1883, *, mqtt5: bool = True, root: str = "devices"
    ) -> None:
        self.device_id, self.host, self.port, self.mqtt5 = device_id, host, port, mqtt5
        self.status_topic = f"{root}/{device_id}/status"
        self.telemetry_topic = f"{root}/{device_id}/telemetry"
        self.commands_topic = f"{root}/{device_id}/commands"
        self.seq = now_ms()  # grows with every connection: boot time in ms, +1 per reconnect
        self.online = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=device_id,  # a stable id: the broker keeps the session (queued commands)
            protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
            clean_session=None if mqtt5 else False,  # 3.1.1: clean_session=0
        )
        self.client.on_connect = self.on_connect
        self.client.on_disconnect = self.on_disconnect
        self.client.on_message = self.on_message
        self.set_last_will()

    def set_last_will(self) -> None:
        """Step 1: the Last Will is `offline` with this connection's sequence number."""
        self.client.will_set(self.status_topic, self.status("offline"), qos=1, retain=True)

    def status(self, status: str) -> str:
        """A status payload: `{"status": ..., "seq": ..., "ts": ...}`."""
        return json.dumps({"status": status, "seq": self.seq, "ts": now_ms()})

    def connect(self) -> None:
        """Connect with a persistent session and start paho's network thread."""
        if self.mqtt5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600  # keep the session an hour while offline
            self.client.connect(self.host, self.port, clean_start=False, properties=properties)
        else:
            self.client.connect(self.host, self.port)
        self.client.loop_start()

    def on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        """Step 2: after CONNACK, subscribe to commands and publish `online` (QoS 1, retained)."""
        client.subscribe(self.commands_topic, qos=1)
        client.publish(self.status_topic, self.status("online"), qos=1, retain=True)
        self.online.set()

    def on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        """A lost connection: the next one (paho reconnects) takes a new sequence number."""
        self.online.clear()
        self.seq += 1
        self.set_last_will()

    # --8<-- [end:connect]

    # --8<-- [start:telemetry]
    def send_reading(self) -> None:
        """Publish one reading (QoS 1, not retained); fields beyond `ts` are per device type."""
        reading = {"ts": now_ms(), "power_w": round(random.uniform(200, 3500), 1), "voltage_v": 230.1}  # noqa: S311
        self.client.publish(self.telemetry_topic, json.dumps(reading), qos=1)

    # --8<-- [end:telemetry]

    # --8<-- [start:commands]
    def on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """A command: run it and reply to its reply topic, echoing its id."""
        command = json.loads(message.payload)
        if command.get("expires_at") is not None and now_ms() > command["expires_at"]:
            return  # expired: may be dropped without a reply
        reply: dict[str, Any] = {"id": command["id"], "ts": now_ms()}
        if command["command"] == "read_meter":
            reply.update(status="ok", result={"energy_kwh": 1520.337, "power_w": 1834.2})
        elif command["command"] == "set_interval":
            reply.update(status="ok", result={"interval": command["params"]["seconds"]})
        else:
            reply.update(status="error", error={"code": "UNKNOWN_COMMAND", "message": "unknown command"})
        response_topic = getattr(message.properties, "ResponseTopic", None)
        if self.mqtt5 and response_topic:
            # MQTT 5: reply to the response topic, echo the correlation data.
            properties = Properties(PacketTypes.PUBLISH)
            properties.CorrelationData = message.properties.CorrelationData
            client.publish(response_topic, json.dumps(reply), qos=1, properties=properties)
        else:
            # MQTT 3.1.1: reply_to and id come in the payload; copy _ctx to continue the trace.
            if "_ctx" in command:
                reply["_ctx"] = command["_ctx"]
            client.publish(command["reply_to"], json.dumps(reply), qos=1)

    # --8<-- [end:commands]

    # --8<-- [start:disconnect]
    def disconnect(self) -> None:
        """Step 3: publish `offline` (same seq) before a clean DISCONNECT, which drops the Last Will."""
        self.client.publish(self.status_topic, self.status("offline"), qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    # --8<-- [end:disconnect]


def main() -> None:
    """Run one device until Ctrl-C, sending a reading every ``--interval`` seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("device_id")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--mqtt", choices=["5", "3.1.1"], default="5")
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    device = Device(args.device_id, args.host, args.port, mqtt5=args.mqtt == "5")
    device.connect()
    try:
        while True:
            if device.online.wait(args.interval):
                device.send_reading()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        device.disconnect()


if __name__ == "__main__":
    main()
