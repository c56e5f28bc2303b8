"""Strip secrets from error messages before they reach a health report or a log line."""

from __future__ import annotations

import re

__all__ = ["describe_error", "redact", "redact_url"]

#: Longest message kept in a health result; the rest is cut (stack dumps help nobody here).
MAX_MESSAGE_LENGTH = 300

# scheme://user:password@host -> scheme://user:***@host (also bare user@ tokens before a host).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<secret>[^@/\s]*)@")
# key=value and key: value pairs whose key names a secret (query strings, DSNs, repr of dicts).
_KEY_VALUE = re.compile(
    r"(?P<key>(?:password|passwd|pwd|secret|token|access_token|refresh_token|api[_-]?key|apikey|auth|"
    r"authorization|credentials?|signature|sig|session|cookie)['\"]?\s*[=:]\s*['\"]?)(?!\*\*\*)(?!(?:Bearer|Basic|Token)\s)(?P<value>[^\s&,;'\"}]+)",
    re.IGNORECASE,
)
# Authorization header values.
_BEARER = re.compile(r"\b(?P<kind>Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Return ``url`` with the password of its user-info part replaced by ``***``.

    Example:
        >>> redact_url("postgresql://app:s3cret@db:5432/energy")
        'postgresql://app:***@db:5432/energy'
    """
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


def redact(message: str, *, max_length: int = MAX_MESSAGE_LENGTH) -> str:
    """Return ``message`` without URL passwords, tokens, keys or bearer credentials.

    Args:
        message: Free text, typically ``str(exc)`` of a failed dependency call.
        max_length: Cut the result to this many characters.

    Example:
        >>> redact("connect to redis://:hunter2@cache:6379 failed; token=abc123")
        'connect to redis://:***@cache:6379 failed; token=***'
    """
    text = redact_url(message)
    text = _BEARER.sub(lambda m: f"{m['kind']} ***", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['key']}***", text)
    if len(text) > max_length:
        text = text[: max_length - 3] + "..."
    return text


def describe_error(exc: BaseException) -> str:
    """Return ``"<ExceptionType>: <message>"`` for ``exc`` with secrets stripped.

    Example:
        >>> describe_error(ConnectionError("redis://:pw@cache refused"))
        'ConnectionError: redis://:***@cache refused'
    """
    message = str(exc).strip() or "no message"
    return redact(f"{type(exc).__name__}: {message}")
