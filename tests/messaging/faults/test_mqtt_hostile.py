"""Messages nobody can use: each is handed over or dead-lettered with a reason, and the consumer keeps consuming.

* a hostile payload barrage (empty, binary, invalid UTF-8, NaN, 1e999999, lone
  surrogates, 200,000 levels of nesting, 900 kB strings) to a JSON and a raw handler;
* messages without a handler (a filter the resumed session still holds but the new
  process dropped): ``no_handler`` dead letters, counted, logged once for the filter.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from energy_messaging.mqtt import DeadLetter, MQTTManager, MQTTMessage

pytestmark = [pytest.mark.mqtt]

DEPTH = 200_000

HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "invalid-utf8": b'{"v": "\xc3\x28"}',
    "utf8-bom": b'\xef\xbb\xbf{"v": 1}',
    "raw-nul": b'{"v": "\x00"}',
    "nan": b"NaN",
    "nan-field": b'{"v": NaN, "w": -Infinity}',
    "huge-exponent": b"1e999999",
    "huge-exponent-field": b'{"v": [-1e999999, 1e999999]}',
    "huge-integer": b"9" * 5_000,
    "lone-surrogate-escaped": b'{"v": "\\ud800", "w": "\\udfff\\ud800"}',
    "lone-surrogate-raw": b'"\xed\xa0\x80"',
    "deep-list": b"[" * DEPTH + b"]" * DEPTH,
    "deep-object": b'{"":' * DEPTH + b"0" + b"}" * DEPTH,
    "deep-unclosed": b"[" * DEPTH,
    "big-string": b'"' + b"x" * 900_000 + b'"',
    "big-escaped-string": b'"' + b"\\u00e9" * 150_000 + b'"',
    "big-invalid-utf8": b'"' + b"\xff" * 900_000 + b'"',
    # The 3.1.1 context field (read from JSON objects) with wrong types and hostile values.
    "ctx-not-object": b'{"_ctx": 5, "v": 1}',
    "ctx-hostile": (
        b'{"_ctx": {"traceparent": "00-zz-zz-01", "x-request-id": "\\ud800", "tracestate": "'
        + b"=," * 50_000
        + b'", "baggage": [1, {"a": null}]}, "v": 1}'
    ),
}

#: MQTT 5 only: a valid payload whose user properties carry a hostile context.
HOSTILE_PROPERTIES = {
    "user_properties": [
        ("traceparent", "00-" + "f" * 10_000),
        ("x-request-id", "\u00e9" * 20_000),
        ("tracestate", ",,,=,="),
        ("x-request-id", ""),
    ]
}

#: Reasons a payload the JSON handler cannot take may be dead-lettered with.
PAYLOAD_REASONS = {"decode_error", "validation_error", "processing_error"}


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_hostile_payloads_are_handed_over_or_dead_lettered(
    mqtt_broker: Any,
    mqtt_topic_prefix: str,
    poll: Callable[..., Any],
    protocol: str,
) -> None:
    """Every hostile payload reaches the raw handler intact and the JSON handler or the dead letter, and consuming goes on."""
    root = mqtt_topic_prefix
    names = [*HOSTILE, *(["ctx-properties"] if protocol == "5" else []), "after"]
    as_json: dict[str, Any] = {}
    as_raw: dict[str, bytes] = {}
    letters: list[DeadLetter] = []

    async def json_handler(message: MQTTMessage) -> None:
        as_json[message.params["name"]] = message.payload

    async def raw_handler(message: MQTTMessage) -> None:
        as_raw[message.params["name"]] = message.raw

    def outcome(name: str) -> str:
        dead = [letter for letter in letters if letter.topic == f"{root}/json/{name}"]
        if name in as_json and not dead:
            return "handled"
        if dead and name not in as_json:
            return f"dead:{dead[0].reason}"
        return f"handled={name in as_json}, dead letters={[(d.reason, d.detail[:80]) for d in dead]}"

    def report() -> str:
        outcomes = {name: outcome(name) for name in names}
        return f"outcomes {outcomes}; raw {sorted(as_raw)}; state {consumer.state}"

    options: dict[str, Any] = {"protocol": protocol}
    consumer = MQTTManager(mqtt_broker.host, mqtt_broker.port, on_dead_letter=letters.append, **options)
    await consumer.subscribe(f"{root}/json/{{name}}", json_handler, qos=1)
    await consumer.subscribe(f"{root}/raw/{{name}}", raw_handler, qos=1, decode=False)
    async with consumer, MQTTManager(mqtt_broker.host, mqtt_broker.port, max_payload_bytes=None, **options) as pub:
        for name, payload in HOSTILE.items():
            await pub.publish(f"{root}/json/{name}", payload, qos=1)
            await pub.publish(f"{root}/raw/{name}", payload, qos=1)
        if protocol == "5":
            await pub.publish(f"{root}/json/ctx-properties", {"v": 1}, qos=1, properties=HOSTILE_PROPERTIES)
        await pub.publish(f"{root}/json/after", {"n": 1}, qos=1)

        def settled() -> bool:
            done = {letter.topic.rsplit("/", 1)[-1] for letter in letters} | set(as_json)
            return done >= set(names) and len(as_raw) == len(HOSTILE)

        await poll(settled, 60, report, progress=lambda: (len(letters), len(as_json), len(as_raw)))

        assert as_json["after"] == {"n": 1}, "the consumer keeps consuming after the barrage"
        assert as_raw == HOSTILE, "a raw handler gets every payload byte for byte"
        for name in names:
            result = outcome(name)
            assert result == "handled" or result.removeprefix("dead:") in PAYLOAD_REASONS, (name, result)
        for name, payload in HOSTILE.items():
            result = outcome(name)
            assert result == "handled" or result.removeprefix("dead:") in PAYLOAD_REASONS, (name, result)
            for letter in letters:
                if letter.topic == f"{root}/json/{name}":
                    assert letter.raw == payload, f"{name}: the dead letter keeps the payload"
                    assert letter.detail, f"{name}: the dead letter says why"
                    assert letter.filter == f"{root}/json/+", name
        # What arrives is what was sent: the values Python's JSON reads are handed over as such.
        if outcome("nan") == "handled":
            assert math.isnan(as_json["nan"])
        if outcome("huge-exponent") == "handled":
            assert as_json["huge-exponent"] == math.inf
        if outcome("big-string") == "handled":
            assert as_json["big-string"] == "x" * 900_000
        for name in ("empty", "binary", "invalid-utf8", "big-invalid-utf8", "huge-integer"):  # not JSON at all
            assert outcome(name) == "dead:decode_error", (name, outcome(name))

        state = consumer.state
        assert state.dead_letters == len(letters), report()
        assert state.dead_letter_reasons == dict(Counter(letter.reason for letter in letters)), report()
        assert state.handler_errors == 0, report()
        assert state.messages_received >= len(HOSTILE) + len(names), report()


@pytest.mark.slow
async def test_handlerless_messages_are_dead_lettered_counted_and_logged_once(
    private_broker: Callable[..., Any],
    poll: Callable[..., Any],
    messaging_logs: Any,
    unique: str,
) -> None:
    """Messages for a filter the session holds but no handler wants are ``no_handler`` dead letters, logged once."""
    broker = private_broker()
    client_id = f"handlerless-{unique}"
    count = 40

    async def ignore(message: MQTTMessage) -> None:
        pass

    # An earlier release subscribed to "gone/#"; the broker keeps that in the session.
    async with MQTTManager(broker.host, broker.port, client_id=client_id) as earlier:
        await earlier.subscribe("gone/#", ignore, qos=1)

    live: list[int] = []
    letters: list[DeadLetter] = []

    async def live_handler(message: MQTTMessage) -> None:
        live.append(message.payload["n"])

    def report() -> str:
        return f"live {len(live)}, dead letters {len(letters)} {sorted({d.reason for d in letters})}, state {now.state}"

    now = MQTTManager(broker.host, broker.port, client_id=client_id, on_dead_letter=letters.append)
    await now.subscribe("live/#", live_handler, qos=1)
    logged_before = len(messaging_logs.records)
    async with now, MQTTManager(broker.host, broker.port) as pub:
        for n in range(count):
            await pub.publish("gone/device/1", {"n": n}, qos=1)
            await pub.publish("live/device/1", {"n": n}, qos=1)
        await poll(lambda: len(letters) >= count and len(live) >= count, 60, report, progress=lambda: len(letters))
        assert sorted(live) == list(range(count)), report()
        assert {letter.reason for letter in letters} == {"no_handler"}, report()
        assert sorted(json.loads(letter.raw)["n"] for letter in letters) == list(range(count)), report()
        assert now.state.dead_letters == count, report()
        assert now.state.dead_letter_reasons == {"no_handler": count}, report()
        assert now.state.handler_errors == 0
    warnings = [r for r in messaging_logs.records[logged_before:] if r.levelno >= logging.WARNING]
    assert 1 <= len(warnings) <= 2, [r.getMessage() for r in warnings]
