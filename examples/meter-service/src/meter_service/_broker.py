"""The embedded MQTT broker (amqtt, MQTT 3.1.1) started in-process when no ``MQTT_URL`` is set.

It serves the demo and a developer's laptop. amqtt accepts ``$share/<group>/...``
filters but does not deliver on them, so on the embedded broker the service subscribes
without the ``$share`` prefix (one replica is all it serves anyway).
"""

from __future__ import annotations

import logging
import socket
import warnings
from types import TracebackType
from typing import Any, Self

from energy_common._extras import missing_extra
from energy_common.exceptions import MessagingConnectionError

try:
    from amqtt.broker import Broker
except ImportError as exc:  # pragma: no cover - energy-libs brings energy-messaging[broker]
    raise missing_extra("energy-messaging", "broker", exc) from exc

__all__ = ["EmbeddedBroker", "free_port"]

logger = logging.getLogger("meter_service.broker")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """An amqtt broker on loopback, as an async context manager.

    Args:
        host: Address to bind (loopback by default: the embedded broker has no auth).
        port: Port to bind; 0 picks a free one (read it back from :attr:`port`).

    Example:
        >>> async def main() -> None:  # doctest: +SKIP
        ...     async with EmbeddedBroker() as broker:
        ...         print(broker.port)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._broker: Any = None

    async def start(self) -> None:
        """Start listening.

        Raises:
            MessagingConnectionError: The port cannot be bound.
        """
        # amqtt warns about plugins it is not given (password file, $SYS) and its legacy config.
        logging.getLogger("amqtt").setLevel(logging.ERROR)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "auth": {"allow-anonymous": True},
            "topic-check": {"enabled": False},
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            broker = Broker(config)
            try:
                await broker.start()
            except Exception as exc:
                raise MessagingConnectionError(
                    f"The embedded MQTT broker could not listen on {self.host}:{self.port} ({exc}); "
                    "set EMBEDDED_BROKER_PORT to a free port or MQTT_URL to an external broker.",
                    {"port": self.port},
                ) from exc
        self._broker = broker
        logger.info("embedded MQTT broker (amqtt, MQTT 3.1.1) listening on %s:%d", self.host, self.port)

    async def aclose(self) -> None:
        """Stop the broker."""
        broker, self._broker = self._broker, None
        if broker is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    await broker.shutdown()
                except Exception:  # shutting down anyway: log and go on
                    logger.debug("embedded broker shutdown was not clean", exc_info=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
