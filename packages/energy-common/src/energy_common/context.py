"""Request context that travels with a request or message: the correlation id.

The correlation id middleware sets it for each HTTP request, the MQTT manager and the
event bus for each message; logging, the HTTP client and messaging read it, so one id
follows a request from HTTP to MQTT and back.

Example:
    >>> from energy_common.context import correlation_scope, get_correlation_id
    >>> with correlation_scope("req-42"):
    ...     get_correlation_id()
    'req-42'
    >>> get_correlation_id() is None
    True
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

__all__ = [
    "CORRELATION_ID_MAX_LENGTH",
    "correlation_scope",
    "get_correlation_id",
    "is_valid_correlation_id",
    "new_correlation_id",
    "reset_correlation_id",
    "set_correlation_id",
]

#: Longest correlation id accepted from outside (headers, MQTT properties).
CORRELATION_ID_MAX_LENGTH = 128

# Letters, digits and the separators that UUIDs, ULIDs and trace ids use; nothing that
# could break a log line, a header or an MQTT topic.
_VALID = re.compile(rf"^[A-Za-z0-9._:\-]{{1,{CORRELATION_ID_MAX_LENGTH}}}$")

_correlation_id: ContextVar[str | None] = ContextVar("energy_correlation_id", default=None)


def get_correlation_id() -> str | None:
    """Return the correlation id of the current request or message, if any."""
    return _correlation_id.get()


def set_correlation_id(value: str | None) -> Token[str | None]:
    """Set the current correlation id; pass the returned token to :func:`reset_correlation_id`."""
    return _correlation_id.set(value)


def reset_correlation_id(token: Token[str | None]) -> None:
    """Restore the correlation id that was current before :func:`set_correlation_id`."""
    _correlation_id.reset(token)


def new_correlation_id() -> str:
    """Return a fresh correlation id (32 lowercase hex characters)."""
    return uuid.uuid4().hex


def is_valid_correlation_id(value: object) -> bool:
    """Tell whether an id received from outside is safe to adopt.

    A valid id is a string of 1 to ``CORRELATION_ID_MAX_LENGTH`` characters from
    ``[A-Za-z0-9._:-]``.
    """
    return isinstance(value, str) and _VALID.fullmatch(value) is not None


@contextmanager
def correlation_scope(value: str | None = None) -> Iterator[str]:
    """Run a block under a correlation id (a new one when ``value`` is None or unsafe)."""
    cid = value if value is not None and is_valid_correlation_id(value) else new_correlation_id()
    token = _correlation_id.set(cid)
    try:
        yield cid
    finally:
        _correlation_id.reset(token)
