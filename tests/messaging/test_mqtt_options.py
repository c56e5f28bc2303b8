"""MQTTOptions: one frozen, validated settings object behind MQTTManager's keyword arguments."""

from __future__ import annotations

import dataclasses
import ssl
import typing
from typing import Any

import pytest
from energy_common.exceptions import ConfigurationError, MessagingError
from energy_messaging.errors import MQTTOptionsError, TopicValidationError
from energy_messaging.mqtt import LastWill, MQTTManager, MQTTOptions, MQTTSettings


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("host", ""),
        ("port", 0),
        ("port", 70_000),
        ("port", "1883"),
        ("protocol", "4"),
        ("client_id", ""),
        ("tls", "yes"),
        ("keepalive", -1),
        ("keepalive", 70_000),
        ("session_expiry", -1),
        ("session_expiry", 2**32),
        ("resume_grace", -1),
        ("resume_grace", float("nan")),
        ("resume_grace", float("inf")),
        ("max_buffered_publishes", -1),
        ("max_queued_messages", 0),
        ("handler_concurrency", 0),
        ("handler_concurrency", True),
        ("max_inflight", -1),
        ("max_payload_bytes", 0),
        ("reconnect_min_delay", 0),
        ("reconnect_max_delay", 0.1),
        ("connect_timeout", 0),
        ("shutdown_timeout", -1),
        ("will", "offline"),
        ("on_connect", 42),
        ("on_dead_letter", "log"),
    ],
)
def test_out_of_range_values_raise_a_typed_error_naming_the_option(option: str, value: Any) -> None:
    """Each invalid option raises MQTTOptionsError (a MessagingError and a ConfigurationError) that names it."""
    with pytest.raises(MQTTOptionsError) as info:
        MQTTOptions(**{option: value})
    assert info.value.details["option"] == option
    assert option in info.value.message
    assert isinstance(info.value, MessagingError)
    assert isinstance(info.value, ConfigurationError)
    assert info.value.error_code == "MQTT_OPTIONS_INVALID"


@pytest.mark.parametrize("kwargs", [{"will": LastWill("a/+")}, {"dead_letter_topic": "dead/#"}])
def test_topics_in_options_are_validated(kwargs: dict[str, Any]) -> None:
    """A Last Will or dead-letter topic with a wildcard is refused when the options are built."""
    with pytest.raises(TopicValidationError):
        MQTTOptions(**kwargs)


def test_will_qos_is_checked() -> None:
    """A Last Will with QoS 3 is refused."""
    with pytest.raises(MQTTOptionsError, match=r"will\.qos"):
        MQTTOptions(will=LastWill("s/t", qos=3))


def test_options_are_frozen_and_hide_the_password() -> None:
    """The options cannot be changed after validation, and their repr does not show the password."""
    options = MQTTOptions(username="svc", password="s3cret")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.port = 1  # type: ignore[misc]
    assert "s3cret" not in repr(options)


def test_tls_true_builds_a_default_context() -> None:
    """``tls=True`` means the system trust store; None and False mean no TLS."""
    assert isinstance(MQTTOptions(tls=True).ssl_context, ssl.SSLContext)
    assert MQTTOptions(tls=None).ssl_context is None
    assert MQTTOptions(tls=False).ssl_context is None


def test_keyword_arguments_are_exactly_the_option_fields() -> None:
    """MQTTSettings (the manager's keyword arguments) lists every MQTTOptions field but host and port."""
    fields = [field.name for field in dataclasses.fields(MQTTOptions)]
    assert list(typing.get_type_hints(MQTTSettings)) == [name for name in fields if name not in ("host", "port")]


def test_manager_keywords_override_an_options_object() -> None:
    """Keyword arguments and host/port replace the matching fields of ``options``; the rest is kept."""
    base = MQTTOptions(host="broker", port=1884, handler_concurrency=2, client_id="svc-1")
    manager = MQTTManager(options=base, handler_concurrency=4)
    assert (manager.host, manager.port, manager.client_id) == ("broker", 1884, "svc-1")
    assert manager.options.handler_concurrency == 4
    assert MQTTManager("other", options=base).options.port == 1884
    with pytest.raises(MQTTOptionsError):
        MQTTManager(options=base, max_queued_messages=0)


def test_defaults() -> None:
    """The documented defaults: persistent session, 5 s resume hold, 8 workers, 1 MiB payloads."""
    options = MQTTOptions()
    assert (options.host, options.port, options.protocol) == ("localhost", 1883, "auto")
    assert (options.clean_start, options.session_expiry, options.resume_grace) == (False, 3600, 5.0)
    assert (options.handler_concurrency, options.max_queued_messages, options.max_payload_bytes) == (8, 1000, 1_048_576)
