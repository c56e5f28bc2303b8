"""A Griffe extension for the API reference: ``Example:`` sections are doctest examples.

The libraries' Google-style docstrings title their doctests ``Example:``; Griffe reads
only ``Examples:`` as an examples section (the singular becomes an admonition whose
``>>>`` lines render as quoted text). This extension renames the title before the
docstring is parsed, so the reference shows them as code without touching the sources.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_TITLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` to ``Examples:`` in every docstring Griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **_: Any) -> None:
        """Rewrite the section title of one object's docstring."""
        if obj.docstring is not None:
            obj.docstring.value = _TITLE.sub(r"\1Examples:", obj.docstring.value)
