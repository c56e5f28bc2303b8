"""Device ids: one MQTT topic level, safe in topics, logs, keys and file names."""

from __future__ import annotations

import re

from energy_auth.devices._errors import DeviceIdError

__all__ = ["MAX_DEVICE_ID_LENGTH", "is_valid_device_id", "validate_device_id"]

MAX_DEVICE_ID_LENGTH = 64
# A letter or digit first, then letters, digits, '.', '_' or '-'. This excludes the MQTT
# wildcards '+' and '#', the level separator '/', NUL, whitespace, ':' (which marks a
# service username, see energy_auth.broker) and '{' '}' (which mark policy placeholders).
_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_valid_device_id(value: object) -> bool:
    """Tell whether ``value`` is an acceptable device id (never raises).

    Example:
        >>> is_valid_device_id("meter-17"), is_valid_device_id("devices/#"), is_valid_device_id("")
        (True, False, False)
    """
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_DEVICE_ID_LENGTH
        and _DEVICE_ID.fullmatch(value) is not None
        and value.isascii()
    )


def validate_device_id(value: object) -> str:
    """Return ``value`` if it is a valid device id.

    Raises:
        DeviceIdError: Not a string, empty, longer than 64 characters, or with a character
            outside ``A-Z a-z 0-9 . _ -`` (or not starting with a letter or digit).
    """
    if is_valid_device_id(value):
        return value  # type: ignore[return-value]  # is_valid_device_id checked the type
    length = len(value) if isinstance(value, str) else None
    raise DeviceIdError(
        "A device id must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a "
        "letter or digit (no '+', '#', '/', ':', spaces or NUL); choose another id.",
        {"max_length": MAX_DEVICE_ID_LENGTH, "length": length},
    )
