"""Small utilities the other packages need: UTC time, ids, pagination parameters.

FastAPI-specific helpers live in :mod:`energy_common.utils.web` (extra ``web``).

Example:
    >>> from energy_common.utils import PaginationParams, new_id, utc_now
    >>> utc_now().tzinfo is not None
    True
"""

from energy_common.utils._ids import new_id, uuid7
from energy_common.utils._pagination import DEFAULT_LIMIT, MAX_LIMIT, PaginationParams
from energy_common.utils._time import ensure_utc, format_utc, utc_now

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "PaginationParams",
    "ensure_utc",
    "format_utc",
    "new_id",
    "utc_now",
    "uuid7",
]
