"""Redaction of secrets in log fields, log messages and error details.

Two pure functions do the work: :func:`redact` replaces the value of every key that
looks secret (recursively through dicts, lists and tuples) and :func:`redact_text`
removes secrets embedded in free text (``Bearer`` tokens, ``password=...`` pairs,
passwords in URLs, JWTs).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_sensitive_key", "might_hold_secret", "redact", "redact_text", "text_is_clean"]

#: What a secret is replaced with.
REDACTED = "[REDACTED]"

# Key fragments that mark a value as secret once the key is lower-cased and "-" is "_".
_SENSITIVE_FRAGMENTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
    "access_key",
    "session_id",
    "sessionid",
    "signature",
)
_SENSITIVE_EXACT = frozenset({"pwd", "auth", "jwt", "otp", "pin", "dsn"})

_MAX_DEPTH = 8

_TEXT_PATTERNS = (
    # Authorization schemes followed by a credential.
    (re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=\-]{6,}"), rf"\1\2{REDACTED}"),
    # key=value / key: value pairs whose key looks secret (quoted or bare value).
    (
        re.compile(
            r"(?i)\b([\w\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|authorization|cookie)[\w\-]*)"
            r"""(["']?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&,;"']+)"""
        ),
        rf"\1\2{REDACTED}",
    ),
    # user:password@host in URLs (DATABASE_URL, REDIS_URL, MQTT_URL).
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/\s@]*:)([^@\s/]+)@"), rf"\1{REDACTED}@"),
    # Bare JWTs.
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"), REDACTED),
)
# Words whose absence proves a text clean: it must contain one wherever a sensitive key
# (see is_sensitive_key) or a text pattern above could match. Plain substring tests on the
# lower-cased text are far cheaper than a case-insensitive regex alternation.
_TRIGGER_WORDS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "cookie",
    "credential",
    "session",
    "signature",
    "jwt",
    "bearer",
    "basic",
    "://",
    "eyj",
    '"otp"',
    '"pin"',
    '"dsn"',
)


def is_sensitive_key(key: object) -> bool:
    """Tell whether a field name looks like it holds a secret.

    Example:
        >>> is_sensitive_key("X-API-Key"), is_sensitive_key("user_id")
        (True, False)
    """
    return isinstance(key, str) and _sensitive_name(key)


# Field names repeat endlessly in logs: remember the verdict for the common ones.
@functools.lru_cache(maxsize=2048)
def _sensitive_name(key: str) -> bool:
    name = key.lower().replace("-", "_")
    if name in _SENSITIVE_EXACT:
        return True
    return any(fragment in name for fragment in _SENSITIVE_FRAGMENTS)


def might_hold_secret(text: str) -> bool:
    """Tell whether ``text`` contains anything :func:`redact` or :func:`redact_text` could change.

    A fast pre-check: False means the text (e.g. a whole JSON log line) is certainly clean.
    """
    lowered = text.lower()
    for word in _TRIGGER_WORDS:  # noqa: SIM110 - a plain loop is measurably faster than any()
        if word in lowered:
            return True
    return False


_CACHEABLE_LENGTH = 256


def text_is_clean(text: str) -> bool:
    """Like ``not might_hold_secret(text)``, remembering the verdict for short strings.

    Log templates, routes, methods and field values repeat endlessly, so the common case
    is a dictionary lookup.
    """
    if len(text) > _CACHEABLE_LENGTH:
        return not might_hold_secret(text)
    return _short_text_is_clean(text)


@functools.lru_cache(maxsize=4096)
def _short_text_is_clean(text: str) -> bool:
    return not might_hold_secret(text)


def redact_text(text: str) -> str:
    """Return ``text`` with embedded secrets replaced by ``[REDACTED]``.

    Example:
        >>> redact_text("login failed for password=hunter2")
        'login failed for password=[REDACTED]'
    """
    if not text or not might_hold_secret(text):
        return text
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, *, _depth: int = 0) -> Any:
    """Return a copy of ``value`` with secret-looking keys redacted, recursively.

    Mappings have the value of every sensitive key replaced; lists and tuples are walked;
    strings have embedded secrets removed with :func:`redact_text`. Other values are
    returned unchanged. Nesting deeper than a few levels is cut off rather than walked.

    Example:
        >>> redact({"user": "ann", "auth": {"password": "x"}})
        {'user': 'ann', 'auth': '[REDACTED]'}
    """
    if isinstance(value, str):
        return value if text_is_clean(value) else redact_text(value)
    if value is None or isinstance(value, int | float):
        return value
    if _depth >= _MAX_DEPTH:
        return value if isinstance(value, int | float | bool | type(None)) else REDACTED
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_sensitive_key(key) else redact(item, _depth=_depth + 1) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item, _depth=_depth + 1) for item in value]
    return value
