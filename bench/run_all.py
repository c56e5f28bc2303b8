"""Run every benchmark in bench/ (files named bench_*.py), one after the other.

    python bench/run_all.py              all benchmarks
    python bench/run_all.py asgi cache   only bench_asgi.py and bench_cache.py
    python bench/run_all.py --quick      fewer rounds (each script accepts --quick)

Each benchmark runs the energy variant side by side with the raw library and its peers
in interleaved rounds and prints ratios of medians; docs/benchmarks.md lists them, with
the figures of each package and the conditions they were measured under.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    """Run the selected benchmarks; return non-zero if any failed."""
    flags = [a for a in argv if a.startswith("-")]
    names = [a for a in argv if not a.startswith("-")]
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    failed = 0
    for script in scripts:
        print(f"\n=== {script.name}", flush=True)
        failed |= subprocess.run([sys.executable, str(script), *flags], check=False).returncode != 0
    return int(failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
