"""tests/docs: the runner ``tests/docs/examples.py`` is importable here as ``doc_examples``.

tests/ is not a package (``--import-mode=importlib``), so the tests of this folder get the
runner, and through it the site's hooks (``doc_examples.hooks()``) and the example files
(``doc_examples.load_file``), from this one place.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("doc_examples", Path(__file__).resolve().parent / "examples.py")
assert _spec is not None
assert _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
sys.modules["doc_examples"] = _module
_spec.loader.exec_module(_module)
