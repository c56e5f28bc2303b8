"""Identifier generation: time-ordered UUIDv7 and optionally prefixed string ids."""

from __future__ import annotations

import os
import re
import time
import uuid

from energy_common.exceptions import ValidationError

__all__ = ["new_id", "uuid7"]

_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,15}$")


def uuid7() -> uuid.UUID:
    """Return a new RFC 9562 version 7 UUID: 48-bit Unix milliseconds then 74 random bits.

    Ids made later sort after earlier ones (to the millisecond), which keeps B-tree
    indexes compact when they are primary keys.
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 used
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)  # 62 bits
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def new_id(prefix: str | None = None) -> str:
    """Return a new unique id: 32 hex characters of a UUIDv7, optionally ``<prefix>_``-ed.

    Args:
        prefix: Short lowercase type tag such as ``"dev"`` or ``"evt"`` (1-16 characters,
            ``[a-z][a-z0-9]*``).

    Raises:
        ValidationError: The prefix is not a short lowercase tag.

    Example:
        >>> new_id("dev").startswith("dev_")
        True
    """
    value = uuid7().hex
    if prefix is None:
        return value
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ValidationError(
            f"An id prefix must be 1-16 characters of [a-z0-9] starting with a letter, got {prefix!r}.",
            {"field": "prefix"},
        )
    return f"{prefix}_{value}"
