"""``python -m energy_messaging.deadletters``: list, show, replay and purge dead letters (Redis).

Exit codes: 0 done, 1 a dead letter was not found or could not be replayed, 2 bad usage.
Output is one JSON object per line (``list``, ``show``) or a short summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

from energy_common.exceptions import EnergyError

from energy_messaging.deadletters._queue import DeadLetterQueue
from energy_messaging.deadletters._sources import DEFAULT_MQTT_STREAM, MQTTDeadLetterStore, event_dead_letters

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    top = argparse.ArgumentParser(
        prog="python -m energy_messaging.deadletters", description="Inspect and replay dead letters."
    )
    top.add_argument("--redis", required=True, help="Redis URL, e.g. redis://127.0.0.1:6379/0")
    kinds = top.add_subparsers(dest="kind", required=True)
    events = kinds.add_parser("events", help="event-bus dead letters")
    events.add_argument("--namespace", default="energy:events", help="the bus's key namespace")
    mqtt = kinds.add_parser("mqtt", help="MQTT dead letters stored by MQTTDeadLetterStore")
    mqtt.add_argument("--stream", default=DEFAULT_MQTT_STREAM, help="the store's stream key")
    mqtt.add_argument("--mqtt-host", default="127.0.0.1", help="broker to replay to")
    mqtt.add_argument("--mqtt-port", type=int, default=1883)
    for sub in (events, mqtt):
        actions = sub.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="list dead letters, oldest first")
        listing.add_argument("--count", type=int, default=100)
        listing.add_argument("--after", default=None, help="list after this id (paging)")
        actions.add_parser("show", help="show one dead letter").add_argument("id")
        actions.add_parser("replay", help="send back and remove the named ones").add_argument("ids", nargs="+")
        actions.add_parser("purge", help="delete exactly the named ones").add_argument("ids", nargs="+")
    return top


@contextlib.asynccontextmanager
async def _queue(args: argparse.Namespace) -> AsyncIterator[DeadLetterQueue]:
    from energy_messaging.events.redis_streams import RedisStreamsEventBus, RedisStreamsTransport  # noqa: PLC0415

    if args.kind == "events":
        async with RedisStreamsEventBus(args.redis, namespace=args.namespace) as bus:
            yield event_dead_letters(bus)
        return
    from energy_messaging.events.redis_streams import connect  # noqa: PLC0415

    transport = RedisStreamsTransport(connect(args.redis), owns_client=True)
    store = MQTTDeadLetterStore(transport, stream=args.stream)
    try:
        if args.action == "replay":
            from energy_messaging.mqtt import MQTTManager  # noqa: PLC0415

            async with MQTTManager(args.mqtt_host, args.mqtt_port) as manager:
                yield store.queue(manager)
        else:
            yield store.queue()
    finally:
        await transport.aclose()


async def _run(args: argparse.Namespace) -> int:
    async with _queue(args) as queue:
        if args.action == "list":
            for record in await queue.list(count=args.count, after=args.after):
                print(record.to_json())
        elif args.action == "show":
            print(json.dumps((await queue.get(args.id)).summary(), indent=2, sort_keys=True))
        elif args.action == "replay":
            print(json.dumps({"replayed": await queue.replay(args.ids)}))
        else:
            print(json.dumps({"purged": await queue.purge(args.ids)}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except EnergyError as exc:
        details: dict[str, Any] = dict(exc.details or {})
        print(json.dumps({"error": exc.error_code, "message": exc.message, "details": details}), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
