"""Redaction of secrets in log fields, log messages and error details.

Two pure functions do the work: :func:`redact` replaces the value of every key that
looks secret (recursively through dicts, lists and tuples) and :func:`redact_text`
removes secrets embedded in free text (``Bearer`` tokens, ``password=...`` pairs,
passwords in URLs, JWTs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_sensitive_key", "redact", "redact_text"]

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
# One cheap pre-check so that ordinary messages skip the substitutions entirely.
_TRIGGER = re.compile(r"(?i)bearer|basic|token|pass|pwd|secret|key|authori|cookie|://|eyJ")


def is_sensitive_key(key: object) -> bool:
    """Tell whether a field name looks like it holds a secret.

    Example:
        >>> is_sensitive_key("X-API-Key"), is_sensitive_key("user_id")
        (True, False)
    """
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    if name in _SENSITIVE_EXACT:
        return True
    return any(fragment in name for fragment in _SENSITIVE_FRAGMENTS)


def redact_text(text: str) -> str:
    """Return ``text`` with embedded secrets replaced by ``[REDACTED]``.

    Example:
        >>> redact_text("login failed for password=hunter2")
        'login failed for password=[REDACTED]'
    """
    if not text or _TRIGGER.search(text) is None:
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
        return redact_text(value)
    if _depth >= _MAX_DEPTH:
        return value if isinstance(value, int | float | bool | type(None)) else REDACTED
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_sensitive_key(key) else redact(item, _depth=_depth + 1) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item, _depth=_depth + 1) for item in value]
    return value
