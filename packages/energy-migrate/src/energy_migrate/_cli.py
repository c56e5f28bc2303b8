"""``python -m energy_migrate migrate PATH``: show (or apply) the import rewrite and the requirements."""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import libcst as cst

from energy_migrate._codemod import rewrite_source
from energy_migrate._mapping import Requirement, requirements_for

__all__ = ["main", "migrate"]

_SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".venv", "venv", "__pycache__", "node_modules", ".tox", ".nox", "build", "dist"}
)


def _python_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*.py")):
        if not _SKIPPED_DIRS.intersection(path.relative_to(root).parts[:-1]):
            yield path


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def requirement_lines(requirements: Sequence[Requirement]) -> list[str]:
    """Requirement lines, pinned to the installed version of each distribution when there is one."""
    return [requirement.line(_installed_version(requirement.distribution)) for requirement in requirements]


def migrate(paths: Sequence[Path], *, write: bool = False, out: TextIO = sys.stdout) -> int:
    """Rewrite the seed imports under ``paths``; print a unified diff, notes and the requirements.

    Args:
        paths: Files or folders (``*.py`` below them, virtualenvs and build folders skipped).
        write: Apply the changes instead of only printing them.
        out: Where the report goes.

    Returns:
        The number of files that changed (or would change).
    """
    changed = 0
    used: set[tuple[str, str | None]] = set()
    for root in paths:
        for path in _python_files(root):
            source = path.read_text(encoding="utf-8")
            try:
                result = rewrite_source(source)
            except cst.ParserSyntaxError as exc:
                print(f"# {path}: not valid Python, skipped ({exc.message})", file=out)
                continue
            used |= result.used
            for note in result.notes:
                print(f"# {path}: {note}", file=out)
            if result.code == source:
                continue
            changed += 1
            diff = difflib.unified_diff(
                source.splitlines(keepends=True), result.code.splitlines(keepends=True), f"a/{path}", f"b/{path}"
            )
            out.writelines(diff)
            if write:
                path.write_text(result.code, encoding="utf-8")
    requirements = requirements_for(used)
    if requirements:
        print("\n# Distributions these imports need (install from the platform index; pin what it serves):", file=out)
        for line in requirement_lines(requirements):
            print(line, file=out)
    verb = "rewritten" if write else "to rewrite (run again with --write to apply)"
    print(f"\n# {changed} file(s) {verb}.", file=out)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``energy-migrate migrate PATH... [--write] [--check]``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m energy_migrate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("migrate", help="rewrite libs.* / infrastructure.logging imports to energy-libs")
    run.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a file or a folder of .py files")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="apply the changes (default: print the diff only)")
    mode.add_argument("--check", action="store_true", help="exit 1 when a file would change (for CI)")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.paths if not path.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    changed = migrate(args.paths, write=args.write)
    return 1 if args.check and changed else 0
