"""Topic access checks over plain patterns: placeholders filled safely, then MQTT matching.

Pure and self-contained on plain data, so :func:`topic_allowed` works on
``AccessPolicy.to_dict()`` output in any process, and :class:`~energy_auth.AccessPolicy`
uses the same code on its compiled roles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from energy_auth._topics import filter_covers, is_topic_filter, is_topic_name, strip_share, topic_matches

__all__ = ["PLACEHOLDERS", "allowed", "fill", "topic_allowed"]

PLACEHOLDERS = ("{device_id}", "{client_id}")


def fill(pattern: str, device_id: str | None, client_id: str | None) -> str | None:
    """Fill the whole-level placeholders of ``pattern``; ``None`` when one cannot be filled safely."""
    levels = pattern.split("/")
    for index, level in enumerate(levels):
        if level in PLACEHOLDERS:
            value = device_id if level == "{device_id}" else client_id
            # The value becomes one literal level: it must not be empty, hold '/', a
            # wildcard or NUL, or start with '$' — else the pattern grants nothing.
            if (
                not isinstance(value, str)
                or not value
                or value.startswith("$")
                or not is_topic_name(value)
                or "/" in value
            ):
                return None
            levels[index] = value
    return "/".join(levels)


def allowed(
    publish: Iterable[str],
    subscribe: Iterable[str],
    action: str,
    *,
    topic: object,
    device_id: str | None,
    client_id: str | None,
) -> bool:
    """Tell whether ``topic`` is allowed for ``action`` by the role's ``publish``/``subscribe`` patterns."""
    if action == "publish":
        if not is_topic_name(topic):
            return False
        patterns: Iterable[str] = publish
    elif action == "subscribe":
        if not is_topic_filter(topic):
            return False
        patterns = subscribe
    elif action == "read":
        if not is_topic_name(topic):
            return False
        patterns = (strip_share(p) for p in subscribe)
    else:
        return False
    for pattern in patterns:
        filled = fill(pattern, device_id, client_id)
        if filled is None:
            continue
        if action == "subscribe":
            if filter_covers(filled, topic):  # type: ignore[arg-type]
                return True
        elif topic_matches(filled, topic):  # type: ignore[arg-type]
            return True
    return False


def topic_allowed(
    policy_data: Mapping[str, Any],
    role: str,
    client_id: str | None,
    action: str,
    topic: str,
    *,
    device_id: str | None = None,
) -> bool:
    """Tell whether ``role`` may ``action`` on ``topic``, from :meth:`AccessPolicy.to_dict` data alone.

    Pure: no IO, no import of the policy classes needed by the caller. Deny by default:
    an unknown role or action, an invalid topic, a wildcard in a published topic, a
    subscription wider than the role's filters, or a placeholder that cannot be filled
    (``{device_id}`` without a device id, a value with ``/``, ``+``, ``#``, NUL or a
    leading ``$``) all return ``False``.

    Args:
        policy_data: The policy as plain data (``AccessPolicy.to_dict()``).
        role: The role of the client.
        client_id: The MQTT client id (fills ``{client_id}``).
        action: ``"publish"`` (a topic name), ``"subscribe"`` (a topic filter) or
            ``"read"`` (a message on a topic name about to be delivered to the client).
        topic: The topic or filter, as the client sent it.
        device_id: The authenticated device id (fills ``{device_id}``).

    Example:
        >>> from energy_auth import DEFAULT_ACCESS_POLICY, topic_allowed
        >>> data = DEFAULT_ACCESS_POLICY.to_dict()
        >>> topic_allowed(data, "meter", "m1", "publish", "devices/m1/telemetry", device_id="m1")
        True
        >>> topic_allowed(data, "meter", "m1", "subscribe", "devices/+/commands", device_id="m1")
        False
    """
    roles = policy_data.get("roles") if isinstance(policy_data, Mapping) else None
    entry = roles.get(role) if isinstance(roles, Mapping) and isinstance(role, str) else None
    if not isinstance(entry, Mapping):
        return False
    publish = [p for p in entry.get("publish", ()) if isinstance(p, str)]
    subscribe = [p for p in entry.get("subscribe", ()) if isinstance(p, str)]
    return allowed(publish, subscribe, action, topic=topic, device_id=device_id, client_id=client_id)
