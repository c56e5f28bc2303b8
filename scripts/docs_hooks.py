"""MkDocs hooks of the documentation site: README includes and the error-code table.

    python scripts/docs_hooks.py      print the error-code table (Markdown)

One source of truth for each fact:

- The package READMEs stay the guides (install line, usage, error codes, figures, as the
  project's standards ask of every README); a page pulls a README, or one section of it,
  in with ``<!-- include: PATH -->`` or ``<!-- include: PATH#Heading prefix level=N -->``.
  The hook rewrites the README's relative links to the site's pages and re-levels the
  section's headings. pymdownx.snippets is kept for code files (it cannot rewrite links).
- The table on ``docs/errors.md`` (``<!-- error-codes -->``) is built from the exception
  classes themselves (``error_code``, ``status_code``, the first docstring line) at every
  build, so it cannot drift from what the libraries raise. ``tests/docs/`` checks that
  every ``EnergyError`` subclass defined in the four libraries appears in it.

A missing file or heading fails the build with what to fix. ``tests/docs/`` expands the
pages with the same functions to find and run every Python example of the site.
"""

from __future__ import annotations

import importlib
import inspect
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: Repository files that are pages of the site (repo path -> page path under docs/), so that
#: a README's link to another README lands on its page.
SITE_PAGES: dict[str, str] = {
    "README.md": "index.md",
    "packages/energy-common/README.md": "packages/energy-common.md",
    "packages/energy-auth/README.md": "packages/energy-auth.md",
    "packages/energy-monitoring/README.md": "packages/energy-monitoring.md",
    "packages/energy-messaging/README.md": "packages/energy-messaging.md",
    "packages/energy-libs/README.md": "packages/energy-libs.md",
    "examples/meter-service/README.md": "packages/meter-service.md",
}

_INCLUDE = re.compile(
    r"^<!-- include: (?P<path>[^#\s]+)(?:#(?P<heading>.*?))?(?: level=(?P<level>[1-6]))? -->$", re.MULTILINE
)
_HEADING = re.compile(r"^(?P<hashes>#{1,6}) (?P<text>.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]+)\]\((?P<target>[^)\s]+)\)")
#: The heading name that selects a README's introduction (between its title and first section).
INTRO = "(intro)"


class IncludeError(Exception):
    """An include names a file or heading that does not exist; the message says which."""


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """``(line index, level, text)`` of every Markdown heading outside fenced code."""
    found, fenced = [], False
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            found.append((index, len(match["hashes"]), match["text"].strip()))
    return found


def select_section(text: str, heading: str | None, *, source: str) -> list[str]:
    """The lines of ``text`` under the first heading starting with ``heading`` (all with ``None``).

    The section runs to the next heading of the same or a higher level. Without such a
    heading, a line starting with ``heading`` begins the section, which runs to the next
    heading. ``INTRO`` selects what stands between the title and the first section.
    """
    lines = text.splitlines()
    if heading is None:
        return lines
    heads = _headings(lines)
    if heading == INTRO:
        end = heads[1][0] if len(heads) > 1 else len(lines)
        return lines[heads[0][0] + 1 : end] if heads else lines
    for position, (index, level, title) in enumerate(heads):
        if title.startswith(heading):
            end = next((i for i, lvl, _ in heads[position + 1 :] if lvl <= level), len(lines))
            return lines[index:end]
    # Not a heading: a paragraph that starts with the text (e.g. "**Benchmark**"), to the next heading.
    starts = [i for i, line in enumerate(lines) if line.startswith(heading) and i not in {h[0] for h in heads}]
    if starts:
        end = next((i for i, _, _ in heads if i > starts[0]), len(lines))
        return lines[starts[0] : end]
    raise IncludeError(f"{source} has no heading starting with {heading!r}; fix the include or the heading.")


def relevel(lines: list[str], level: int) -> list[str]:
    """Shift the headings of ``lines`` so that the first one is at ``level``."""
    heads = _headings(lines)
    if not heads:
        return lines
    shift = level - heads[0][1]
    out = list(lines)
    for index, old, title in heads:
        out[index] = "#" * min(6, max(1, old + shift)) + " " + title
    return out


def rewrite_links(lines: list[str], source: str, page: str) -> list[str]:
    """Point the relative links of an included file (repo path ``source``) at the site.

    A link to a file that is a page of the site goes to that page; a link to any other
    repository file becomes its path in code (the site does not serve source files).
    """

    def fix(match: re.Match[str]) -> str:
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return match[0]
        path, _, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        site_page = SITE_PAGES.get(repo_path) or (
            repo_path.removeprefix("docs/") if repo_path.startswith("docs/") else None
        )
        if site_page is not None:
            relative = posixpath.relpath(site_page, posixpath.dirname(page) or ".")
            return f"[{match['text']}]({relative}{'#' + anchor if anchor else ''})"
        return f"{match['text']} (`{repo_path}`)"

    out, fenced = [], False
    for line in lines:
        if _FENCE.match(line):
            fenced = not fenced
        out.append(line if fenced else _LINK.sub(fix, line))
    return out


def expand_includes(markdown: str, page: str) -> str:
    """Replace every include comment of a page (``page``: its path under docs/) by the text it names."""

    def include(match: re.Match[str]) -> str:
        source = match["path"]
        file = ROOT / source
        if not file.is_file():
            raise IncludeError(f"docs/{page} includes {source}, which does not exist.")
        lines = select_section(file.read_text(encoding="utf-8"), match["heading"], source=source)
        if match["level"]:
            lines = relevel(lines, int(match["level"]))
        return "\n".join(rewrite_links(lines, source, page))

    return _INCLUDE.sub(include, markdown)


#: Where each distribution's errors are importable from, most general path first. A class
#: is listed under the first of these modules whose ``__all__`` names it.
PUBLIC_ERROR_MODULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("energy-common", ("energy_common.exceptions", "energy_common.health")),
    ("energy-auth", ("energy_auth", "energy_auth.devices")),
    ("energy-monitoring", ("energy_monitoring.metrics", "energy_monitoring.tracing")),
    ("energy-messaging", ("energy_messaging.errors", "energy_messaging.events", "energy_messaging.dynsec")),
)

#: The placeholder in a page that the hook replaces with the table.
PLACEHOLDER = "<!-- error-codes -->"


@dataclass(frozen=True)
class ErrorRow:
    """One exception class of the table.

    Attributes:
        distribution: The distribution that defines it, e.g. ``energy-auth``.
        path: Its public import path, e.g. ``energy_auth.TokenExpiredError``.
        bases: Public paths of its energy-error bases (the umbrella classes).
        status_code: The HTTP status the web layer answers with.
        error_code: The stable machine-readable code.
        summary: The first line of its docstring.
        cls: The class itself.
    """

    distribution: str
    path: str
    bases: tuple[str, ...]
    status_code: int
    error_code: str
    summary: str
    cls: type[Any]


def public_paths() -> dict[type[Any], tuple[str, str]]:
    """Map every public energy-error class to ``(distribution, public import path)``."""
    from energy_common.exceptions import EnergyError  # noqa: PLC0415 - the docs env imports it late

    paths: dict[type[Any], tuple[str, str]] = {}
    for distribution, modules in PUBLIC_ERROR_MODULES:
        for name in modules:
            module = importlib.import_module(name)
            for attr in getattr(module, "__all__", ()):
                obj = getattr(module, attr)
                if inspect.isclass(obj) and issubclass(obj, EnergyError) and obj not in paths:
                    paths[obj] = (distribution, f"{name}.{attr}")
    return paths


def error_rows() -> list[ErrorRow]:
    """Every public energy-error class, by distribution, then module, then definition order."""
    paths = public_paths()
    rows = []
    for cls, (distribution, path) in paths.items():
        bases = tuple(paths[base][1] for base in cls.__bases__ if base in paths)
        doc = inspect.getdoc(cls) or ""
        rows.append(
            ErrorRow(
                distribution=distribution,
                path=path,
                bases=bases,
                status_code=int(cls.status_code),
                error_code=str(cls.error_code),
                summary=doc.strip().splitlines()[0] if doc.strip() else "",
                cls=cls,
            )
        )
    order = [distribution for distribution, _ in PUBLIC_ERROR_MODULES]

    def key(row: ErrorRow) -> tuple[int, str, int]:
        # Definition order inside a module follows the hierarchy (umbrella before its children).
        return order.index(row.distribution), row.cls.__module__, inspect.getsourcelines(row.cls)[1]

    return sorted(rows, key=key)


def _short(path: str) -> str:
    """``energy_auth.TokenExpiredError`` → ``TokenExpiredError`` (the table's column shows the module)."""
    return path.rsplit(".", 1)[1]


def render_table(rows: list[ErrorRow] | None = None) -> str:
    """The Markdown of the error-code table: one section per distribution."""
    rows = error_rows() if rows is None else rows
    out: list[str] = []
    for distribution, modules in PUBLIC_ERROR_MODULES:
        mine = [row for row in rows if row.distribution == distribution]
        if not mine:
            continue
        out += [
            f"## {distribution}",
            "",
            "Importable from " + ", ".join(f"`{m}`" for m in modules) + ".",
            "",
            "| `error_code` | HTTP | class | base | meaning |",
            "|---|---|---|---|---|",
        ]
        for row in mine:
            bases = ", ".join(f"`{_short(b)}`" for b in row.bases) or "—"
            summary = row.summary.replace("|", "\\|")
            # The class links to its entry in the API reference (autorefs; --strict fails if it has none).
            link = f"[`{_short(row.path)}`][{row.path}]"
            out.append(f"| `{row.error_code}` | {row.status_code} | {link} | {bases} | {summary} |")
        out.append("")
    return "\n".join(out)


def render_page(markdown: str, page: str) -> str:
    """A page's Markdown as the site shows it: includes expanded, generated tables filled in."""
    markdown = expand_includes(markdown, page)
    if PLACEHOLDER in markdown:
        markdown = markdown.replace(PLACEHOLDER, render_table())
    return markdown


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """MkDocs hook: expand includes and fill the error-code table of one page."""
    return render_page(markdown, page.file.src_uri)


if __name__ == "__main__":
    sys.stdout.write(render_table())
