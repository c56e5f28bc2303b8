"""Commands to Mosquitto's dynamic-security plugin over an :class:`MQTTManager` (the admin client).

The plugin reads JSON commands published to ``$CONTROL/dynamic-security/v1`` and
answers all of them on ``$CONTROL/dynamic-security/v1/response`` (QoS 0, to every
subscriber); each command here carries a random ``correlationData``, so answers are
matched to their command even when several admins share the broker.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from energy_messaging.dynsec._errors import DynamicSecurityError
from energy_messaging.dynsec._plan import CONTROL_TOPIC, RESPONSE_TOPIC

if TYPE_CHECKING:
    from energy_messaging.mqtt._manager import MQTTManager
    from energy_messaging.mqtt._message import MQTTMessage

__all__ = ["DynamicSecurityClient"]


class DynamicSecurityClient:
    """Send dynamic-security commands and wait for their answers.

    Uses the public API of an :class:`MQTTManager` connected with the credentials of a
    client whose role may publish to ``$CONTROL/dynamic-security/#`` and read its
    response topic (see :func:`bootstrap_config`). A dedicated manager is best: the
    admin's credentials should not be those of a service that also ingests telemetry.

    Args:
        mqtt: The admin's manager (connected before or after :meth:`start`).
        timeout: Seconds to wait for the broker's answer to one batch of commands.

    Example:
        >>> async def main(admin_mqtt: MQTTManager) -> None:  # doctest: +SKIP
        ...     dynsec = DynamicSecurityClient(admin_mqtt)
        ...     await dynsec.start()
        ...     print(await dynsec.call("listRoles"))
    """

    def __init__(self, mqtt: MQTTManager, *, timeout: float = 5.0) -> None:
        self.mqtt = mqtt
        self.timeout = timeout
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._started = False
        #: Commands sent, by name (reads included), for tests and logs.
        self.sent: list[str] = []

    async def start(self) -> None:
        """Subscribe to the response topic (once)."""
        if not self._started:
            await self.mqtt.subscribe(RESPONSE_TOPIC, self._on_response, qos=0)
            self._started = True

    async def _on_response(self, message: MQTTMessage) -> None:
        payload = message.payload
        responses = payload.get("responses") if isinstance(payload, dict) else None
        for response in responses if isinstance(responses, list) else ():
            if not isinstance(response, dict):
                continue
            future = self._waiting.get(str(response.get("correlationData")))
            if future is not None and not future.done():
                future.set_result(response)

    async def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send commands in one message; return the broker's response to each, in order.

        A response with an ``error`` is returned, not raised (reads answer "not found").

        Raises:
            DynamicSecurityError: If the broker did not answer within ``timeout`` (the admin's
                credentials or ACL may be wrong, or the plugin is not loaded).
        """
        await self.start()
        if not commands:
            return []
        loop = asyncio.get_running_loop()
        ids = [os.urandom(8).hex() for _ in commands]
        futures = [loop.create_future() for _ in commands]
        self._waiting.update(zip(ids, futures, strict=True))
        try:
            body = [{**command, "correlationData": cid} for command, cid in zip(commands, ids, strict=True)]
            self.sent.extend(str(command.get("command")) for command in commands)
            await self.mqtt.publish(CONTROL_TOPIC, {"commands": body}, qos=1)
            try:
                return list(await asyncio.wait_for(asyncio.gather(*futures), self.timeout))
            except TimeoutError:
                name = str(commands[0].get("command"))
                raise DynamicSecurityError(
                    f"The broker did not answer the dynamic-security command {name!r} within {self.timeout:g} s; "
                    "check that the plugin is loaded and that the admin client may publish to "
                    f"{CONTROL_TOPIC} and read {RESPONSE_TOPIC}.",
                    name,
                    None,
                ) from None
        finally:
            for cid in ids:
                self._waiting.pop(cid, None)

    async def call(self, command: str, **fields: Any) -> dict[str, Any]:
        """Run one command; return its ``data`` (empty for commands without one).

        Raises:
            DynamicSecurityError: The broker refused it (``error`` holds its reason) or did not answer.
        """
        (response,) = await self.run([{"command": command, **fields}])
        raise_for(response)
        data = response.get("data")
        return data if isinstance(data, dict) else {}


def raise_for(response: dict[str, Any]) -> None:
    """Raise :class:`DynamicSecurityError` if ``response`` carries an error.

    Raises:
        DynamicSecurityError: The broker refused the command.
    """
    error = response.get("error")
    if error is None:
        return
    command = str(response.get("command"))
    raise DynamicSecurityError(
        f"The broker refused the dynamic-security command {command!r}: {error}. Check the command's arguments "
        "(a role or client may be missing); re-run the sync to repair the broker's state.",
        command,
        str(error),
    )
