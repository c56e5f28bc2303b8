"""The import codemod: rewrite seed ``libs.*`` imports in one module's source, keeping its formatting.

libcst keeps every comment, blank line and parenthesis; only the module paths change,
and a ``from`` import is split only when some of its names now live elsewhere
(``from libs.common import auth, exceptions`` → ``import energy_auth as auth`` and
``from energy_common import exceptions``). Handled:

- ``import libs.common.cache`` / ``import libs.common.cache as cache`` and the dotted uses
  ``libs.common.cache.CacheManager`` of a plain import;
- ``from libs.common.exceptions import (A, B as C)`` and ``import *``;
- modules imported as names (``from libs.common import auth``, ``from libs import common``);
- submodules of seed folders that became one package (``libs.common.auth.jwt``);
- dotted-path strings such as ``mock.patch("libs.common.cache.CacheManager.get")``.

A rewritten module contains no seed import, so a second run changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import libcst as cst
from libcst.helpers import get_full_name_for_node

from energy_migrate._mapping import FOLDED, SEED_MODULES, map_module

__all__ = ["MigrationResult", "rewrite_source"]

_OLD_ROOTS = ("libs", "infrastructure")
_DOTTED_STRING = re.compile(
    r"""(?P<quote>['"])(?P<path>(?:libs|infrastructure)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?P=quote)"""
)


@dataclass
class MigrationResult:
    """The outcome of rewriting one module.

    Attributes:
        code: The new source (the same text when nothing matched).
        used: ``(new module, imported name or None)`` for every rewritten import.
        notes: Things the codemod left for a human, one sentence each.
    """

    code: str
    used: set[tuple[str, str | None]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def _dotted(path: str) -> cst.Attribute | cst.Name:
    node = cst.parse_expression(path)
    assert isinstance(node, cst.Attribute | cst.Name)  # noqa: S101 - a dotted path parses to these
    return node


def _is_old(path: str | None) -> bool:
    return path is not None and path.split(".")[0] in _OLD_ROOTS


class _PlainImports(cst.CSTVisitor):
    """Collects the old modules bound by ``import libs.x.y`` without ``as`` (their dotted uses are rewritten)."""

    def __init__(self) -> None:
        self.paths: set[str] = set()

    def visit_Import(self, node: cst.Import) -> bool:
        for alias in node.names:
            path = get_full_name_for_node(alias.name)
            if alias.asname is None and _is_old(path) and path is not None and map_module(path) is not None:
                self.paths.add(path)
        return False


class _Rewriter(cst.CSTTransformer):
    def __init__(self, plain_imports: set[str], result: MigrationResult) -> None:
        super().__init__()
        # Longest first, so libs.common.auth wins over libs.common for a dotted use.
        self._plain = sorted(plain_imports, key=len, reverse=True)
        self._result = result

    # -------------------------------------------------------------- import x.y

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def leave_Import(self, original_node: cst.Import, updated_node: cst.Import) -> cst.Import:
        names = []
        for alias in updated_node.names:
            path = get_full_name_for_node(alias.name)
            new = map_module(path) if path is not None and _is_old(path) else None
            if new is None:
                if path in _OLD_ROOTS:
                    self._result.notes.append(f"'import {path}' left alone: import the modules you use instead.")
                names.append(alias)
                continue
            self._result.used.add((new, None))
            names.append(alias.with_changes(name=_dotted(new)))
        return updated_node.with_changes(names=names)

    # -------------------------------------------------------------- from x import y

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def leave_ImportFrom(
        self, original_node: cst.ImportFrom, updated_node: cst.ImportFrom
    ) -> cst.ImportFrom | cst.FlattenSentinel[cst.BaseSmallStatement]:
        if updated_node.relative or updated_node.module is None:
            return updated_node
        old = get_full_name_for_node(updated_node.module)
        if old is None or not _is_old(old):
            return updated_node
        new = map_module(old)
        if isinstance(updated_node.names, cst.ImportStar):
            if new is None:
                return updated_node
            self._result.used.add((new, None))
            return updated_node.with_changes(module=_dotted(new))
        kept: list[cst.ImportAlias] = []
        moved: list[cst.BaseSmallStatement] = []
        for alias in updated_node.names:
            name = get_full_name_for_node(alias.name) or ""
            bound = get_full_name_for_node(alias.asname.name) if alias.asname is not None else name
            full = f"{old}.{name}"
            target = map_module(full) if full in SEED_MODULES else None
            if target is not None and target != f"{new}.{name}":  # a module living elsewhere now
                self._result.used.add((target, None))
                moved.append(_import_as(target, bound or name))
            elif new is not None:
                self._result.used.add((new, name))
                kept.append(alias)
            else:  # e.g. from libs import something_unknown
                self._result.notes.append(f"'from {old} import {name}' has no new home; it was left alone.")
                kept.append(alias)
        if not moved:
            return updated_node.with_changes(module=_dotted(new)) if new is not None else updated_node
        statements: list[cst.BaseSmallStatement] = []
        if kept:
            statements.append(_with_names(updated_node, kept, new))
        return cst.FlattenSentinel([*statements, *moved])

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.FlattenSentinel[cst.SimpleStatementLine]:
        if len(updated_node.body) == len(original_node.body):
            return updated_node
        # A split import: one statement per line, the first keeps the comments.
        lines = []
        for index, statement in enumerate(updated_node.body):
            plain = statement.with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
            line = updated_node.with_changes(body=[plain])
            lines.append(
                line
                if index == 0
                else line.with_changes(leading_lines=[], trailing_whitespace=cst.TrailingWhitespace())
            )
        return cst.FlattenSentinel(lines)

    # -------------------------------------------------------------- dotted uses and strings

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> cst.BaseExpression:
        path = get_full_name_for_node(original_node)
        if path is None or not self._plain or not _is_old(path):
            return updated_node
        for imported in self._plain:
            if path == imported or path.startswith(imported + "."):
                new = map_module(imported)
                if new is not None:
                    return _dotted(new + path[len(imported) :])
        return updated_node

    def leave_SimpleString(self, original_node: cst.SimpleString, updated_node: cst.SimpleString) -> cst.SimpleString:
        match = _DOTTED_STRING.fullmatch(updated_node.value)
        if match is None:
            return updated_node
        path = match["path"]
        folded = next((f for f in FOLDED if path.startswith(f + ".")), None)
        if folded is not None and path.count(".") > folded.count(".") + 1:
            self._result.notes.append(f"String '{path}' names a submodule of a seed folder: fix it by hand.")
            return updated_node
        new = map_module(path)
        if new is None:
            return updated_node
        return updated_node.with_changes(value=f"{match['quote']}{new}{match['quote']}")


def _import_as(target: str, bound: str) -> cst.BaseSmallStatement:
    parent, _, last = target.rpartition(".")
    if parent:
        asname = "" if last == bound else f" as {bound}"
        statement = cst.parse_statement(f"from {parent} import {last}{asname}\n")
    else:
        asname = "" if target == bound else f" as {bound}"
        statement = cst.parse_statement(f"import {target}{asname}\n")
    assert isinstance(statement, cst.SimpleStatementLine)  # noqa: S101 - parse_statement of one import
    return statement.body[0]


def _with_names(node: cst.ImportFrom, kept: Sequence[cst.ImportAlias], new: str | None) -> cst.ImportFrom:
    if node.lpar is None:  # without parentheses a trailing comma is a syntax error
        kept = [*kept[:-1], kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)]
    module = _dotted(new) if new is not None else node.module
    return node.with_changes(module=module, names=kept)


def rewrite_source(code: str) -> MigrationResult:
    """Rewrite the seed imports of one module's source.

    Args:
        code: Python source text.

    Returns:
        The new code, the new modules it imports and notes for a human.

    Raises:
        libcst.ParserSyntaxError: ``code`` is not valid Python.

    Example:
        >>> rewrite_source("from libs.common.exceptions import ValidationError  # why\\n").code
        'from energy_common.exceptions import ValidationError  # why\\n'
    """
    module = cst.parse_module(code)
    collector = _PlainImports()
    module.visit(collector)
    result = MigrationResult(code)
    result.code = module.visit(_Rewriter(collector.paths, result)).code
    return result
