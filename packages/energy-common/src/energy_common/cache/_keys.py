"""Key building: escaped parts that never collide, and Redis glob patterns."""

from __future__ import annotations

import re

__all__ = ["escape_glob", "escape_part", "glob_to_regex", "make_key"]

# Every character that has a meaning in our keys or in Redis patterns, plus '%' itself so
# the encoding stays injective: two different part lists always give two different keys.
_SPECIAL = re.compile(r"[%:*?\[\]\\{}\s\x00-\x1f\x7f]")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode())


def escape_part(part: object) -> str:
    """Escape one key part (``str(part)``) so it contains no separator or glob character.

    Example:
        >>> escape_part("a:b*")
        'a%3Ab%2A'
    """
    return _SPECIAL.sub(_percent, str(part))


def make_key(*parts: object) -> str:
    """Join escaped parts with ``:``; different part lists never give the same key.

    Example:
        >>> make_key("user", "1:2") != make_key("user:1", "2")
        True
        >>> make_key("user", 42)
        'user:42'
    """
    return ":".join(escape_part(part) for part in parts)


def escape_glob(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself in SCAN MATCH."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    r"""Compile a Redis glob pattern (``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]``, ``\x``) to a regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                negate = body.startswith("^")
                body = body[1:] if negate else body
                escaped = "".join(c if c == "-" else re.escape(c) for c in body)
                out.append(f"[{'^' if negate else ''}{escaped}]")
                i = end + 1
                continue
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)
