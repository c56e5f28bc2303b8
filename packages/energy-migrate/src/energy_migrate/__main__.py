"""Run the migration tool: ``python -m energy_migrate migrate PATH [--write]``."""

import sys

from energy_migrate._cli import main

sys.exit(main())
