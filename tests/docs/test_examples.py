"""Every Python example of the documentation site runs, against the real local services.

The examples are the fenced ``python`` blocks of ``docs/`` with the package READMEs
included as the site includes them; ``tests/docs/examples.py`` runs each one in a
process of its own with the setup it declares (see its docstring).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import doc_examples as examples
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


BLOCKS = [(page, index, block) for page in examples.pages() for index, block in enumerate(examples.blocks(page))]


def test_the_site_has_examples() -> None:
    """The collection finds the examples of the pages and of the included READMEs."""
    pages = {page for page, _, _ in BLOCKS}
    assert {"errors.md", "packages/energy-common.md", "packages/energy-messaging.md", "device-protocol.md"} <= pages
    assert len(BLOCKS) >= 30


def test_every_setup_matches_one_example() -> None:
    """A setup whose example was removed or rewritten fails here instead of lingering."""
    for setup in examples.SETUPS:
        matching = [(page, index) for page, index, block in BLOCKS if setup.match in block]
        assert len(matching) == 1, f"setup {setup.match!r} matches {matching or 'no example'}"


@pytest.mark.parametrize(("page", "index", "block"), BLOCKS, ids=[f"{page}[{index}]" for page, index, _ in BLOCKS])
def test_example_runs(page: str, index: int, block: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The example runs to the end without an error (snippet blocks: the file they show is tested)."""
    if examples.is_snippet(block):
        for line in block.split():
            if line.endswith(".py") or ".py:" in line:
                shown = line.split(":", 1)[0]
                assert (ROOT / shown).is_file(), f"{shown} does not exist"
                assert shown.startswith("docs/examples/"), "examples shown from files live in docs/examples/"
                name = Path(shown).name
                assert any(name in test.read_text() for test in HERE.glob("test_*.py")), f"no test runs {name}"
        return
    setup = examples.setup_for(block)
    env = dict(os.environ, ENERGY_DOC_PREFIX=f"doc-{uuid.uuid4().hex[:8]}", ENERGY_DOC_TMP=str(tmp_path))
    needs: tuple[str, ...] = setup.needs if setup else ()
    if "postgres" in needs:
        env["ENERGY_DOC_POSTGRES_URL"] = request.getfixturevalue("postgres_url")
    if "redis" in needs:
        env["ENERGY_DOC_REDIS_URL"] = request.getfixturevalue("redis_url")
    if "mqtt" in needs:
        broker: Any = request.getfixturevalue("mosquitto_factory")()
        env.update(ENERGY_DOC_MQTT_HOST="127.0.0.1", ENERGY_DOC_MQTT_PORT=str(broker.port))
    result = subprocess.run(
        [sys.executable, str(HERE / "examples.py"), page, str(index)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, (
        f"docs/{page} example {index} failed:\n{block}\n--- output:\n{result.stdout}{result.stderr}"
    )
