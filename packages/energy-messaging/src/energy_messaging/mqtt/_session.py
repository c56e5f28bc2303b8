"""The supervised MQTT session: connect, fall back to 3.1.1, resubscribe, reconnect forever.

:class:`Session` owns the connection: its supervisor task opens a client, hands it to
the inbound and outbound parts, waits until the connection is lost or the manager
stops, and starts over with exponential backoff. Only cancellation ends it: any other
exception is logged, written to ``state.last_error`` and followed by a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import aiomqtt

from energy_messaging._errors import MessagingError
from energy_messaging.mqtt._payload import encode_payload
from energy_messaging.mqtt._router import BrokerFilter

if TYPE_CHECKING:
    from energy_messaging.mqtt._client import Client
    from energy_messaging.mqtt._inbound import Inbound
    from energy_messaging.mqtt._options import MQTTOptions
    from energy_messaging.mqtt._outbound import Outbound
    from energy_messaging.mqtt._router import Router
    from energy_messaging.mqtt._tasks import Status, Tasks

__all__ = ["Session"]

logger = logging.getLogger("energy_messaging.mqtt")

_PROBE_TIMEOUT = 3.0
_REFUSED_PROTOCOL = {1, 132}  # 3.1.1 "unacceptable protocol version", MQTT 5 "unsupported protocol version"
_VERSIONS = {
    "5": (aiomqtt.ProtocolVersion.V5,),
    "3.1.1": (aiomqtt.ProtocolVersion.V311,),
    "auto": (aiomqtt.ProtocolVersion.V5, aiomqtt.ProtocolVersion.V311),
}


class Session:
    """One supervised connection to the broker, shared by the inbound and outbound parts.

    Args:
        options: The manager's options.
        client_id: The client id in use (given or generated).
        router: The subscriptions to make on every connection.
        inbound: Receives messages and the connected client.
        outbound: Sends publishes over the connected client.
        status: Counters and last error.
        tasks: Owner of the supervisor and hook tasks.
    """

    def __init__(
        self,
        options: MQTTOptions,
        client_id: str,
        *,
        router: Router,
        inbound: Inbound,
        outbound: Outbound,
        status: Status,
        tasks: Tasks,
    ) -> None:
        self.options = options
        self.client_id = client_id
        self._router = router
        self._inbound = inbound
        self._outbound = outbound
        self._status = status
        self._tasks = tasks
        self._tls = options.ssl_context
        self.client: Client | None = None
        self.version: aiomqtt.ProtocolVersion | None = None
        self.connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._aborting = False
        self._first_connack = True

    @property
    def running(self) -> bool:
        """Whether the supervisor runs (between ``start`` and ``stop``)."""
        return self._supervisor is not None

    @property
    def protocol(self) -> str | None:
        """The negotiated protocol, ``"5"`` or ``"3.1.1"``, once connected."""
        if self.version is None:
            return None
        return "5" if self.version == aiomqtt.ProtocolVersion.V5 else "3.1.1"

    @property
    def auto_id(self) -> bool:
        """Whether the client id was generated (nobody can resume its session)."""
        return self.options.client_id is None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the supervisor task."""
        self._stopping.clear()
        self._supervisor = self._tasks.spawn(self._supervise(), "supervisor")

    async def stop(self, *, abort: bool = False) -> None:
        """Stop the supervisor: DISCONNECT cleanly, or (``abort``) cut the socket like a crash."""
        if self._supervisor is None:
            return
        self._aborting = abort
        if abort and self.client is not None:
            self.client.shutdown_socket()
        self._stopping.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._supervisor
        self._supervisor = None
        self._aborting = False

    # ------------------------------------------------------------------ supervisor
    async def _supervise(self) -> None:
        attempt = 0
        low, high = self.options.reconnect_min_delay, self.options.reconnect_max_delay
        while not self._stopping.is_set():
            try:
                client = await self._open()
            except Exception as exc:  # noqa: BLE001 - refused, unreachable, a bug: report and retry, never end
                self._status.fail("connect failed", exc)
                jitter = int.from_bytes(os.urandom(2), "big") / 65_535  # no `random` import: keeps import cheap
                delay = min(high, low * 2**attempt) * (0.5 + jitter / 2)
                attempt += 1
                logger.warning(
                    "MQTT connect to %s:%s as %s failed (%s); retrying in %.2f s",
                    self.options.host,
                    self.options.port,
                    self.client_id,
                    self._status.last_error,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            attempt = 0
            try:
                await self._serve(client)
            except Exception as exc:
                self._status.fail("MQTT session failed", exc)
                logger.exception("MQTT session with %s:%s failed; reconnecting", self.options.host, self.options.port)
                with contextlib.suppress(TimeoutError):  # do not spin if it fails at once again
                    await asyncio.wait_for(self._stopping.wait(), low)
            finally:
                try:
                    await self._close(client)
                except Exception as exc:  # a bug while releasing: report it, keep supervising
                    self._status.fail("MQTT session cleanup failed", exc)
                    logger.exception("MQTT session cleanup failed")

    async def _open(self) -> Client:
        from energy_messaging.mqtt._client import refusal_code  # noqa: PLC0415 - loads with the first connection

        choices = _VERSIONS[self.options.protocol] if self.version is None else (self.version,)
        password = self.options.password
        if self.options.password_provider is not None:
            password = await self.options.password_provider()
        for index, version in enumerate(choices):
            probing = index + 1 < len(choices)
            client = self._make_client(version, password)
            if probing:
                # Some 3.1.1-only brokers (amqtt) choke on MQTT 5 CONNECT properties and never answer.
                client.timeout = min(self.options.connect_timeout, _PROBE_TIMEOUT)
            try:
                await client.open()
            except aiomqtt.MqttError as exc:
                if probing and refusal_code(exc) in _REFUSED_PROTOCOL:
                    logger.info("MQTT broker %s:%s refused MQTT 5; falling back to 3.1.1", *self._address)
                    continue
                if probing and refusal_code(exc) is None and "timed out" in str(exc):
                    logger.info("MQTT broker %s:%s did not answer MQTT 5; trying 3.1.1", *self._address)
                    continue
                raise
            client.timeout = self.options.connect_timeout
            self.version = version
            return client
        raise aiomqtt.MqttError("no protocol version was accepted")  # pragma: no cover - loop always returns/raises

    @property
    def _address(self) -> tuple[str, int]:
        return self.options.host, self.options.port

    def _make_client(self, version: aiomqtt.ProtocolVersion, password: str | None) -> Client:
        # The wire-level client (and its packet codec) loads with the first connection.
        from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY  # noqa: PLC0415
        from paho.mqtt.packettypes import PacketTypes  # noqa: PLC0415
        from paho.mqtt.properties import Properties  # noqa: PLC0415

        from energy_messaging.mqtt._client import Client  # noqa: PLC0415

        options = self.options
        v5 = version == aiomqtt.ProtocolVersion.V5
        will = None
        last_will = options.will() if callable(options.will) else options.will
        if last_will is not None:
            from energy_messaging._topics import validate_topic  # noqa: PLC0415

            payload = encode_payload(last_will.payload, None)
            will = aiomqtt.Will(validate_topic(last_will.topic), payload, last_will.qos, last_will.retain)
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0 if options.clean_start else options.session_expiry
            properties.ReceiveMaximum = min(options.max_queued_messages, 65_535)
        self._lost = asyncio.Event()
        return Client(
            options.host,
            options.port,
            username=options.username,
            password=password,
            identifier=self.client_id,
            protocol=version,
            will=will,
            clean_session=None if v5 else (options.clean_start or self.auto_id),
            clean_start=options.clean_start if v5 else MQTT_CLEAN_START_FIRST_ONLY,
            keepalive=options.keepalive,
            timeout=options.connect_timeout,
            max_inflight_messages=0,  # unlimited in paho: the Outbound keeps the window
            properties=properties,
            tls_context=self._tls,
            # Small PUBLISH/PUBACK packets must not wait for Nagle + delayed ACK (~40 ms).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            deliver=self._inbound.deliver,
            lost=self._lost.set,
            acked=self._outbound.acked,
            connack=self._connack,
            task_prefix=self._tasks.prefix,
        )

    def _connack(self, session_present: bool) -> None:
        # Runs inside the client's read loop, before the resumed session's queue is delivered.
        first, self._first_connack = self._first_connack, False
        if first and session_present and self.options.resume_grace > 0:
            # The broker delivers the resumed session's queue now, maybe before the
            # application registered its handlers: hold what has none for a while.
            self._inbound.hold_unrouted(self.options.resume_grace)

    async def _serve(self, client: Client) -> None:
        status = self._status
        status.connections += 1
        if status.connections > 1:
            status.reconnects += 1
        status.session_present = client.session_present
        # Messages of a resumed session may arrive before the resubscribe finishes.
        self._inbound.attach(client)
        try:
            for entry in list(self._router.filters.values()):
                await self.subscribe(client, entry)
        except aiomqtt.MqttError as exc:  # the connection failed meanwhile: start over
            status.fail("resubscribe failed", exc)
            logger.warning("MQTT resubscribe on %s:%s failed (%s); reconnecting", *self._address, exc)
            return
        self.client = client
        self._outbound.attach(client)
        status.last_connected_at = time.time()
        status.last_error = None
        self.connected.set()
        if self.options.on_connect is not None:
            self._tasks.spawn(_call_hook(self.options.on_connect), "on-connect")
        logger.info(
            "MQTT connected to %s:%s as %s (MQTT %s, session %s)",
            self.options.host,
            self.options.port,
            self.client_id,
            self.protocol,
            "resumed" if client.session_present else "new",
        )
        loop = asyncio.get_running_loop()
        stop = loop.create_task(self._stopping.wait(), name=f"{self._tasks.prefix}-wait-stop")
        lost = loop.create_task(self._lost.wait(), name=f"{self._tasks.prefix}-wait-lost")
        try:
            await asyncio.wait({stop, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            lost.cancel()
        if self._lost.is_set() and not self._stopping.is_set():
            status.fail("connection lost")
            logger.warning("MQTT connection to %s:%s lost; reconnecting", *self._address)

    async def _close(self, client: Client) -> None:
        self.client = None
        self.connected.clear()
        self._inbound.connection_lost()
        self._outbound.detach()
        try:
            drop = self.auto_id  # nobody can resume a random client id: let the broker drop the session now
            lost = self._lost.is_set() or self._aborting
            await asyncio.wait_for(client.close(lost=lost, drop_session=drop), 5.0)
        except Exception as exc:  # noqa: BLE001 - best effort at shutdown
            logger.debug("MQTT disconnect was not clean: %s", exc)

    async def subscribe(self, client: Client, entry: BrokerFilter) -> bool:
        """Subscribe one filter; a refusal is logged and put in ``state.last_error`` (False), not raised.

        Raises:
            aiomqtt.MqttError: If the connection failed meanwhile.
        """
        try:
            self.check_granted(entry, await client.subscribe_filter(entry.mqtt_filter, entry.qos, entry.identifier))
        except MessagingError as exc:
            self._status.fail(exc.message)
            logger.error("%s", exc.message)
            return False
        return True

    @staticmethod
    def check_granted(entry: BrokerFilter, granted: list[int]) -> None:
        """Raise if the broker refused the subscription (a SUBACK reason code >= 0x80).

        Raises:
            MessagingError: The refusal, naming the filter and the reason code.
        """
        for value in granted:
            if value >= 0x80:
                raise MessagingError(
                    f"The broker refused the subscription to {entry.mqtt_filter!r} (reason code {value}); "
                    "check its ACL. Messages for it are not received until it is granted.",
                    {"topic_filter": entry.mqtt_filter, "reason_code": value},
                )


async def _call_hook(hook: Any) -> None:
    # A failure ends the task: Tasks logs it with the task's name and records it in state.last_error.
    result = hook()
    if inspect.isawaitable(result):
        await result
