"""A Griffe extension for the API reference: read the libraries' docstrings as they are written.

- The Google-style docstrings title their doctests ``Example:``; Griffe reads only
  ``Examples:`` as an examples section (the singular becomes an admonition whose ``>>>``
  lines render as quoted text), so the title is renamed.
- Some docstrings name objects with Sphinx roles (``:class:`~energy_messaging.MQTTManager```),
  which Markdown shows literally; they become code (``MQTTManager``, the last part when
  the target starts with ``~``, as Sphinx shows it).

Both happen before the docstring is parsed, so the sources stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_TITLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|exc|data|obj|const):`(?P<tilde>~?)(?P<target>[^`]+)`")


def _role(match: re.Match[str]) -> str:
    target = match["target"]
    return f"`{target.rsplit('.', 1)[-1] if match['tilde'] else target}`"


def rewrite(docstring: str) -> str:
    """The docstring with ``Examples:`` titles and Sphinx roles turned into code."""
    return _ROLE.sub(_role, _TITLE.sub(r"\1Examples:", docstring))


class LibraryDocstrings(griffe.Extension):
    """Apply :func:`rewrite` to every docstring Griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **_: Any) -> None:
        """Rewrite one object's docstring."""
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
