"""Public errors of energy-messaging (see :mod:`energy_messaging._errors` for the tree).

Every name of ``energy_messaging._errors.__all__`` is re-exported here, so the two
lists cannot drift apart.
"""

from energy_messaging._errors import *  # noqa: F403 - the public face of the private module
from energy_messaging._errors import __all__ as __all__  # noqa: PLC0414 - explicit re-export
