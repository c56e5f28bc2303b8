"""Incoming path: bounded queue, handler workers, in-order manual acks, dead letters."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from energy_messaging import _context
from energy_messaging._message import DeadLetter, MQTTMessage
from energy_messaging._router import Router, Subscription

if TYPE_CHECKING:
    import paho.mqtt.client as paho

    from energy_messaging._client import Client
    from energy_messaging._wire import Incoming

    #: A received message: decoded by the client, or by paho (QoS 2, unusual properties).
    Received = paho.MQTTMessage | Incoming

__all__ = ["DeadLetterHook", "Inbound", "InboundStats"]

logger = logging.getLogger("energy_messaging.mqtt")

#: Called with every dead letter; may be sync or async; its errors are logged, never raised.
DeadLetterHook = Callable[[DeadLetter], Awaitable[None] | None]

_UNDECODED: Any = object()


class InboundStats:
    """Counters of the incoming path."""

    __slots__ = ("dead_letters", "handled", "handler_errors", "last_message_at", "received")

    def __init__(self) -> None:
        self.received = 0
        self.handled = 0
        self.handler_errors = 0
        self.dead_letters = 0
        self.last_message_at: float | None = None


class _Pending:
    """A received QoS > 0 message whose ack waits for its handler (and those before it)."""

    __slots__ = ("done", "generation", "mid", "qos")

    def __init__(self, mid: int, qos: int, generation: int) -> None:
        self.mid = mid
        self.qos = qos
        self.generation = generation
        self.done = False


class Inbound:
    """Queue incoming messages, run handlers with bounded concurrency, then ack in order."""

    def __init__(
        self,
        router: Router,
        *,
        concurrency: int,
        max_queued: int,
        dead_letter: Callable[[DeadLetter], None],
    ) -> None:
        import json  # noqa: PLC0415 - here, not at import: keeps `import energy_messaging.mqtt` light

        self._loads = json.loads
        self._router = router
        self._concurrency = concurrency
        self._max_queued = max_queued
        self._resume_below = max(max_queued // 2, 1)
        self._dead_letter = dead_letter
        self._queue: asyncio.Queue[tuple[Received, _Pending | None]] = asyncio.Queue()
        self._pending: deque[_Pending] = deque()
        self._generation = 0
        self._client: Client | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._busy = 0
        self.stats = InboundStats()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the handler workers."""
        self._workers = [
            asyncio.create_task(self._work(), name=f"energy-mqtt-handler-{index}") for index in range(self._concurrency)
        ]

    def attach(self, client: Client) -> None:
        """Use a freshly connected client for acks and flow control."""
        self._client = client

    def connection_lost(self) -> None:
        """Forget acks of the lost connection: the broker redelivers those messages."""
        self._generation += 1
        self._pending.clear()
        self._client = None

    @property
    def queued(self) -> int:
        """Messages received and not yet handled (queued plus running)."""
        return self._queue.qsize() + self._busy

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 - a drain deadline, not a call timeout
        """Wait until the queue is empty and no handler runs; return False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.qsize() or self._busy:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self) -> None:
        """Cancel the workers."""
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    # ------------------------------------------------------------------ paho callback
    def deliver(self, message: Received) -> None:
        """Queue one message (called by paho inside the event loop; never raises)."""
        pending = None
        if message.qos > 0:
            pending = _Pending(message.mid, message.qos, self._generation)
            self._pending.append(pending)
        self._queue.put_nowait((message, pending))
        stats = self.stats
        stats.received += 1
        stats.last_message_at = time.time()
        if self._client is not None and self._queue.qsize() >= self._max_queued:
            self._client.pause_reading()

    # ------------------------------------------------------------------ workers
    async def _work(self) -> None:
        queue = self._queue
        while True:
            message, pending = await queue.get()
            if self._client is not None and self._client._paused and queue.qsize() < self._resume_below:
                self._client.resume_reading()
            # A message of a lost connection is still handled: the broker may redeliver it
            # (a duplicate), but after a broker crash it may also have forgotten it.
            self._busy += 1
            try:
                await self._process(message)
            except Exception:
                logger.exception("MQTT message processing failed")
            finally:
                self._busy -= 1
                self.stats.handled += 1
                if pending is not None:
                    self._finish(pending)

    def _finish(self, pending: _Pending) -> None:
        pending.done = True
        queue = self._pending
        client = self._client
        while queue and queue[0].done:
            head = queue.popleft()
            if client is not None and head.generation == self._generation:
                client.ack(head.mid, head.qos)

    async def _process(self, message: Received) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self._dead_letter(DeadLetter("", bytes(message.payload), "decode_error", "topic is not valid UTF-8"))
            return
        props = message.properties
        identifiers = getattr(props, "SubscriptionIdentifier", None) if props is not None else None
        routes = self._router.routes(topic, identifiers)
        if not routes:
            return
        raw = bytes(message.payload)
        user_props = getattr(props, "UserProperty", None) if props is not None else None
        decoded: Any = _UNDECODED
        cid: str | None = None
        carrier: dict[str, str] = {}
        for sub, params in routes:
            if sub.decode:
                if decoded is _UNDECODED:
                    try:
                        decoded = self._loads(raw)
                    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                        self._dead_letter(DeadLetter(topic, raw, "decode_error", str(exc), sub.pattern.mqtt_filter))
                        return
                    cid, carrier = _context.extract(user_props, decoded)
                value = decoded
                if sub.model is not None:
                    try:
                        value = sub.model.model_validate(decoded)
                    except ValueError as exc:  # pydantic.ValidationError is a ValueError
                        self._dead_letter(DeadLetter(topic, raw, "validation_error", str(exc), sub.pattern.mqtt_filter))
                        continue
            else:
                value = raw
                if user_props and not carrier:
                    cid, carrier = _context.extract(user_props, None)
            await self._call(
                sub,
                MQTTMessage(
                    topic,
                    value,
                    raw,
                    qos=message.qos,
                    retain=bool(message.retain),
                    duplicate=bool(message.dup),
                    params=dict(params) if params else {},
                    correlation_id=cid,
                    trace_context=carrier,
                    properties=props,
                ),
                cid,
                carrier,
            )

    async def _call(self, sub: Subscription, msg: MQTTMessage, cid: str | None, carrier: dict[str, str]) -> None:
        try:
            if cid is None and not carrier:
                result = sub.handler(msg)
                if inspect.isawaitable(result):
                    await result
            else:
                with _context.handler_scope(cid, carrier):
                    result = sub.handler(msg)
                    if inspect.isawaitable(result):
                        await result
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this worker is being stopped
            # The handler's own CancelledError (e.g. it awaited a cancelled future): a failure
            # like any other, or it would end this worker and shrink the handler concurrency.
            self._handler_failed(sub, msg, exc)
        except Exception as exc:  # noqa: BLE001 - a handler failure is logged and counted, never raised
            self._handler_failed(sub, msg, exc)

    def _handler_failed(self, sub: Subscription, msg: MQTTMessage, exc: BaseException) -> None:
        self.stats.handler_errors += 1
        logger.error("MQTT handler %r failed for topic %s", sub.handler, msg.topic, exc_info=exc)
        # MQTT has no negative ack: the message is acknowledged (a poison message would
        # otherwise come back on every reconnect and hold up the in-order acks), so hand it
        # to the dead-letter hook/topic for whoever must look at it.
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self._dead_letter(DeadLetter(msg.topic, msg.raw, "handler_error", detail, sub.pattern.mqtt_filter))
