"""The site's build hooks: README includes, link rewriting and the generated error-code table."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import doc_examples
import pytest
from energy_common.exceptions import EnergyError

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = ("energy_common", "energy_auth", "energy_monitoring", "energy_messaging")


hooks = doc_examples.hooks()


def _all_library_modules() -> list[str]:
    """Every module of the four libraries, private ones included."""
    names = []
    for top in LIBRARIES:
        package = importlib.import_module(top)
        names.append(top)
        names += [info.name for info in pkgutil.walk_packages(package.__path__, f"{top}.")]
    return names


def _subclasses(cls: type) -> set[type]:
    """Every subclass of ``cls``, transitively."""
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_library_error_is_in_the_table() -> None:
    """Each EnergyError subclass the libraries define appears, with its code and status, under a public path."""
    for name in _all_library_modules():
        importlib.import_module(name)
    defined = {cls for cls in _subclasses(EnergyError) if cls.__module__.split(".")[0] in LIBRARIES} | {EnergyError}
    rows = {row.cls: row for row in hooks.error_rows()}
    missing = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in defined - set(rows))
    assert not missing, f"not exported from a module of PUBLIC_ERROR_MODULES: {missing}"
    table = hooks.render_table()
    for cls, row in rows.items():
        assert (row.error_code, row.status_code) == (cls.error_code, cls.status_code)
        assert f"| `{cls.error_code}` | {cls.status_code} | [`{cls.__name__}`][{row.path}] |" in table
        module, name = row.path.rsplit(".", 1)
        assert getattr(importlib.import_module(module), name) is cls


def test_errors_page_gets_the_table() -> None:
    """The placeholder on docs/errors.md is replaced by the generated table."""
    page = (ROOT / "docs" / "errors.md").read_text()
    assert hooks.PLACEHOLDER in page
    rendered = hooks.render_page(page, "errors.md")
    assert hooks.PLACEHOLDER not in rendered
    assert "| `TOKEN_EXPIRED` | 401 | [`TokenExpiredError`][energy_auth.TokenExpiredError] |" in rendered


def test_include_whole_file_section_and_intro(tmp_path: Path) -> None:
    """Includes take a whole file, a section to the next heading of its level (re-levelled), or the intro."""
    text = "# T\n\nintro\n\n## A\n\na\n\n```python\n# not a heading\n```\n\n### A1\n\nx\n\n## B\n\nb\n"
    assert hooks.select_section(text, None, source="x") == text.splitlines()
    section = hooks.select_section(text, "A", source="x")
    assert section[0] == "## A"
    assert "# not a heading" in section
    assert "## B" not in section
    assert hooks.relevel(section, 3)[0] == "### A"
    assert "#### A1" in hooks.relevel(section, 3)
    assert hooks.select_section(text, hooks.INTRO, source="x") == ["", "intro", ""]
    assert hooks.select_section("# T\n\n**Bench** x\ny\n\n## C\n", "**Bench**", source="x") == ["**Bench** x", "y", ""]


def test_include_of_a_missing_file_or_heading_fails_with_what_to_fix() -> None:
    """A broken include is a typed error that names the file or heading, never silently empty."""
    with pytest.raises(hooks.IncludeError, match="does not exist"):
        hooks.expand_includes("<!-- include: packages/nope/README.md -->", "index.md")
    with pytest.raises(hooks.IncludeError, match="no heading starting with 'Nope'"):
        hooks.expand_includes("<!-- include: README.md#Nope -->", "index.md")


def test_readme_links_point_at_site_pages() -> None:
    """A README's link to another README goes to its page; other repository files become code paths."""
    lines = [
        "see [the service](examples/meter-service/README.md#api), [docs](docs/errors.md),",
        "[bench](bench/run_all.py), [web](https://example.org) and [here](#layout)",
        "```",
        "[kept](as/is.md)",
        "```",
    ]
    out = hooks.rewrite_links(lines, "README.md", "packages/energy-common.md")
    assert out[0] == "see [the service](meter-service.md#api), [docs](../errors.md),"
    assert out[1] == "bench (`bench/run_all.py`), [web](https://example.org) and [here](#layout)"
    assert out[3] == "[kept](as/is.md)"
