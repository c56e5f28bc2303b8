#!/usr/bin/env python3
"""One entry point for the energy-libs monorepo; needs only Python 3.11+ and git.

    python3 dev.py demo [options]      the main job: the reference meter service with simulated meters
    python3 dev.py test [pytest opts]  the whole test suite in three phases: full suite in the dev env,
                                       the documentation build (--strict), and the per-distribution
                                       isolation matrix (`hatch test --all`). Options (-x, -k EXPR, -q, ...)
                                       reach both pytest phases; given test paths, only the first phase
                                       runs (the matrix runs each distribution's own tests/<package>/)
    python3 dev.py check               ruff check, ruff format --check and mypy --strict
    python3 dev.py bench [names]       the benchmarks in bench/ (e.g. `mqtt events`, `--quick`)
    python3 dev.py docs [--serve]      build the documentation site into build/site/ (--strict), or
                                       preview it on http://127.0.0.1:8001
    python3 dev.py hatch …             any hatch command with the pinned hatch

On first use it creates `.venv/` holding the pinned hatch and uv; hatch then builds the
project's environments with uv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
HATCH_PIN = "hatch==1.18.2"
UV_PIN = "uv==0.13.9"


def _bin(name: str) -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return VENV / scripts / f"{name}{suffix}"


def bootstrap() -> Path:
    """Create .venv with the pinned hatch and uv when missing; return the hatch path."""
    hatch = _bin("hatch")
    marker = VENV / ".energy-bootstrap"
    wanted = f"{HATCH_PIN} {UV_PIN}\n"
    if hatch.exists() and marker.exists() and marker.read_text() == wanted:
        return hatch
    print(f"dev.py: installing {HATCH_PIN} and {UV_PIN} into {VENV} ...", flush=True)
    if not _bin("python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    # pip's own output (notably one warning per package and configured index location that
    # this machine's pip.conf may name) is shown only when the install fails.
    result = subprocess.run(
        [str(_bin("python")), "-m", "pip", "install", "--disable-pip-version-check", HATCH_PIN, UV_PIN],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"dev.py: pip could not install {HATCH_PIN} and {UV_PIN} (output above).")
    marker.write_text(wanted)
    return hatch


def hatch(*args: str, env: dict[str, str] | None = None) -> int:
    """Run the pinned hatch with ``args`` in the repository root; return its exit code."""
    run_env = dict(os.environ)
    # Put .venv/bin first so hatch finds the pinned uv.
    run_env["PATH"] = f"{_bin('python').parent}{os.pathsep}{run_env.get('PATH', '')}"
    run_env.update(env or {})
    return subprocess.run([str(bootstrap()), *args], cwd=ROOT, env=run_env, check=False).returncode


#: pytest options whose value is a separate argument (never a test path).
_VALUE_OPTIONS = {
    "-k",
    "-m",
    "-p",
    "-o",
    "-c",
    "-W",
    "--deselect",
    "--ignore",
    "--ignore-glob",
    "--rootdir",
    "--timeout",
}


def _selects_tests(args: list[str]) -> bool:
    """Whether pytest ``args`` name test files or nodes (``tests/auth``, ``x.py::test_y``)."""
    previous = ""
    for arg in args:
        if previous not in _VALUE_OPTIONS and not arg.startswith("-") and (ROOT / arg.split("::", 1)[0]).exists():
            return True
        previous = arg
    return False


def test(args: list[str]) -> int:
    """The three test phases; options reach both pytest phases, paths only the first."""
    code = hatch("run", "test", *args)
    if code != 0:
        return code
    if _selects_tests(args):
        print("dev.py: test paths given, so only the dev-env phase ran (no docs build, no isolation matrix).")
        return 0
    print("dev.py: building the documentation site (mkdocs --strict) ...", flush=True)
    # No --quiet: mkdocs then drops warnings before --strict counts them, and a broken
    # reference would pass.
    code = hatch("run", "docs:build")
    if code != 0:
        return code
    # Isolation matrix: each distribution alone. Slow fault tests and packaging ran
    # above already; here the point is undeclared imports.
    return hatch("test", "--all", "--", "-q", "-m", "not slow and not packaging", *args)


def main(argv: list[str]) -> int:
    """Dispatch one dev.py command."""
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return hatch("run", "demo", *rest)
    if command == "test":
        return test(rest)
    if command == "check":
        return hatch("run", "lint") or hatch("run", "types")
    if command == "bench":
        return hatch("run", "bench", *rest)
    if command == "docs":
        if rest[:1] == ["--serve"]:
            return hatch("run", "docs:serve", *rest[1:])
        return hatch("run", "docs:build", *rest)
    if command == "hatch":
        return hatch(*rest)
    print(f"dev.py: unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
