"""Tests for the import codemod: every import form, formatting kept, idempotence, notes.

These tests need only energy-migrate (and libcst): the rewritten code is compared as
text, never imported (that is tests/integration/test_migration_seed_examples.py).
"""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest
from energy_migrate import map_module, rewrite_source


def rewrite(code: str) -> str:
    """Rewrite dedented ``code`` and check a second run changes nothing."""
    first = rewrite_source(textwrap.dedent(code)).code
    assert rewrite_source(first).code == first, "the codemod is not idempotent"
    return first


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("libs.common.exceptions", "energy_common.exceptions"),
        ("libs.common", "energy_common"),
        ("libs.common.auth", "energy_auth"),
        ("libs.common.auth.jwt", "energy_auth"),
        ("libs.common.health.checks", "energy_common.health"),
        ("libs.monitoring.metrics", "energy_monitoring.metrics"),
        ("libs.messaging", "energy_messaging"),
        ("libs.messaging.mqtt", "energy_messaging.mqtt"),
        ("infrastructure.logging", "energy_common.logging"),
        ("infrastructure", None),
        ("infrastructure.database", None),
        ("libs", None),
        ("libsx.common", None),
        ("os.path", None),
    ],
)
def test_module_mapping_follows_the_architecture_table(old: str, new: str | None) -> None:
    """Old module paths map as ARCHITECTURE.md says; seed folders' submodules fold into the package; others stay."""
    assert map_module(old) == new


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("import libs.common.cache\n", "import energy_common.cache\n"),
        ("import libs.common.cache as cache\n", "import energy_common.cache as cache\n"),
        ("import os, libs.common.auth as a, json\n", "import os, energy_auth as a, json\n"),
        ("from libs.common.cache import CacheManager\n", "from energy_common.cache import CacheManager\n"),
        ("from libs.common.auth import TokenManager as TM\n", "from energy_auth import TokenManager as TM\n"),
        ("from libs.common.auth.jwt import TokenManager\n", "from energy_auth import TokenManager\n"),
        ("from libs.monitoring.metrics import *\n", "from energy_monitoring.metrics import *\n"),
        ("from infrastructure.logging import setup_logging\n", "from energy_common.logging import setup_logging\n"),
        ("from libs.common import exceptions\n", "from energy_common import exceptions\n"),
        ("from libs.common import auth\n", "import energy_auth as auth\n"),
        ("from libs.common import auth as a\n", "import energy_auth as a\n"),
        ("from libs import common\n", "import energy_common as common\n"),
        ("from libs import monitoring as mon\n", "import energy_monitoring as mon\n"),
        ("from infrastructure import logging\n", "from energy_common import logging\n"),
        ("from infrastructure import logging as log\n", "from energy_common import logging as log\n"),
        (
            "from libs.common import exceptions, auth  # both\n",
            "from energy_common import exceptions  # both\nimport energy_auth as auth\n",
        ),
        (
            "from libs.common import auth, cache as c, exceptions\n",
            "from energy_common import cache as c, exceptions\nimport energy_auth as auth\n",
        ),
    ],
)
def test_import_forms(before: str, after: str) -> None:
    """Plain, aliased, starred and module-as-name imports are rewritten to their new homes."""
    assert rewrite(before) == after


def test_parenthesised_import_keeps_comments_and_layout() -> None:
    """A multi-line ``from ... import (a, b)`` keeps its comments, order, aliases and trailing comma."""
    before = """\
        # leading comment
        from libs.common.exceptions import (  # errors
            ValidationError,  # 400
            # the 404
            ResourceNotFoundError as NotFound,
        )
        """
    assert rewrite(before) == textwrap.dedent(before).replace("libs.common.exceptions", "energy_common.exceptions")


def test_split_import_in_a_block_keeps_indentation() -> None:
    """A split ``from`` import inside try/def stays in its block, one statement per line."""
    before = """\
        def load():
            try:
                from libs.common import auth, responses
            except ImportError:  # optional
                return None
            return auth, responses
        """
    expected = """\
        def load():
            try:
                from energy_common import responses
                import energy_auth as auth
            except ImportError:  # optional
                return None
            return auth, responses
        """
    assert rewrite(before) == textwrap.dedent(expected)


def test_dotted_uses_of_a_plain_import_are_rewritten() -> None:
    """``import libs.common.exceptions`` and its uses ``libs.common.exceptions.X`` move together."""
    before = """\
        import libs.common.exceptions
        import libs.common.auth

        def check(token):
            manager = libs.common.auth.TokenManager(token)
            raise libs.common.exceptions.ValidationError("bad", {"field": "x"})
        """
    expected = """\
        import energy_common.exceptions
        import energy_auth

        def check(token):
            manager = energy_auth.TokenManager(token)
            raise energy_common.exceptions.ValidationError("bad", {"field": "x"})
        """
    assert rewrite(before) == textwrap.dedent(expected)


def test_dotted_strings_are_rewritten_for_mock_patch() -> None:
    """Dotted-path strings (``mock.patch`` targets) follow the mapping; other strings are untouched."""
    before = """\
        patch("libs.common.cache.CacheManager.get")
        patch('infrastructure.logging.setup_logging')
        message = "see libs.common.cache for details"
        """
    expected = """\
        patch("energy_common.cache.CacheManager.get")
        patch('energy_common.logging.setup_logging')
        message = "see libs.common.cache for details"
        """
    assert rewrite(before) == textwrap.dedent(expected)


@pytest.mark.parametrize(
    ("code", "note"),
    [
        ("import libs\n", "'import libs' left alone"),
        ("from libs import nothing_known\n", "'from libs import nothing_known' has no new home"),
        ('patch("libs.common.auth.jwt.TokenManager")\n', "submodule of a seed folder"),
    ],
)
def test_ambiguous_cases_are_left_with_a_note(code: str, note: str) -> None:
    """What cannot be mapped safely is left as is and reported."""
    result = rewrite_source(code)
    assert result.code == code
    assert any(note in line for line in result.notes), result.notes


@pytest.mark.parametrize(
    "code",
    [
        "from .libs.common import x\n",
        "from . import libs\n",
        "import mylibs.common\n",
        "from unrelated.libs.common import x\n",
        "libs = 1\nlibs.common.cache = 2\n",
        "",
    ],
)
def test_unrelated_code_is_untouched(code: str) -> None:
    """Relative imports, look-alike packages and code without a plain old import are not changed."""
    result = rewrite_source(code)
    assert result.code == code
    assert result.used == set()


def test_invalid_python_raises_the_parser_error() -> None:
    """Source that does not parse raises libcst's ParserSyntaxError (the CLI reports and skips it)."""
    with pytest.raises(cst.ParserSyntaxError):
        rewrite_source("from libs.common import (\n")


def test_used_modules_are_reported() -> None:
    """The result names every new module and name the rewritten imports use."""
    result = rewrite_source("from libs.common.cache import CacheManager\nfrom libs.common import auth\n")
    assert result.used == {("energy_common.cache", "CacheManager"), ("energy_auth", None)}
