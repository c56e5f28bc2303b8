"""energy-migrate: move a service from the seed ``libs/`` to the energy-libs distributions.

``python -m energy_migrate migrate PATH`` prints the import rewrite as a diff and the
distributions (with extras) the code needs; ``--write`` applies it. The same from Python:

Example:
    >>> from energy_migrate import rewrite_source
    >>> print(rewrite_source("from libs.common import auth, exceptions\\n").code, end="")
    import energy_auth as auth
    from energy_common import exceptions
"""

from energy_migrate.__about__ import __version__
from energy_migrate._cli import main, migrate, requirement_lines
from energy_migrate._codemod import MigrationResult, rewrite_source
from energy_migrate._mapping import Requirement, map_module, requirements_for

__all__ = [
    "MigrationResult",
    "Requirement",
    "__version__",
    "main",
    "map_module",
    "migrate",
    "requirement_lines",
    "requirements_for",
    "rewrite_source",
]
