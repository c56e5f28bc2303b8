"""How every old module of the shim is built: a live alias of its new module, warning once.

An alias module holds no copy: attribute access goes to the new module through a module
``__getattr__`` (PEP 562), so classes keep their identity (``libs.common.exceptions.ValidationError
is energy_common.exceptions.ValidationError``), lazily loaded names still load lazily and
``from ... import *`` follows the new module's ``__all__``. Importing the old module
emits one :class:`DeprecationWarning` naming the new import, attributed to the importing
line (Python caches the module, so a second import is silent).
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["alias"]

# Top-level new package -> (distribution, extra of energy-libs-compat that brings it).
_DISTRIBUTIONS: dict[str, tuple[str, str | None]] = {
    "energy_common": ("energy-common", None),
    "energy_auth": ("energy-auth", "auth"),
    "energy_monitoring": ("energy-monitoring", "monitoring"),
    "energy_messaging": ("energy-messaging", "messaging"),
}
_SHIM_ROOTS = ("libs", "infrastructure")


def _importer_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside the shim and the import machinery.

    :func:`warnings.warn` already skips importlib's own frames when counting, so only
    the shim's frames are counted here.
    """
    frame = sys._getframe(2)  # 0: here, 1: alias() (stacklevel 1), 2: the shim module being executed
    level = 1
    while frame is not None:
        if not frame.f_code.co_filename.startswith("<frozen importlib"):
            level += 1
            if str(frame.f_globals.get("__name__", "")).split(".")[0] not in _SHIM_ROOTS:
                break
        frame = frame.f_back  # type: ignore[assignment]
    return level


def _import_target(old: str, new: str) -> Any:
    try:
        return importlib.import_module(new)
    except ModuleNotFoundError as exc:
        top = new.split(".", maxsplit=1)[0]
        if exc.name != top:  # an extra of an installed distribution: its own message says which
            raise
        distribution, extra = _DISTRIBUTIONS[top]
        via = f" (or 'energy-libs-compat[{extra}]')" if extra else ""
        raise ImportError(
            f"{old} is an alias of {new}, whose distribution {distribution} is not installed: "
            f"pip install '{distribution}'{via}."
        ) from exc


def alias(
    old: str, new: str, *, submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """Make the calling module ``old`` an alias of ``new``; return its ``__getattr__``, ``__dir__``, ``__all__``.

    Args:
        old: The old module's name (``__name__`` of the caller).
        new: The module it now is.
        submodules: Old submodules of a package alias; attribute access imports them
            (so ``from libs.common import auth`` warns for ``libs.common.auth``).

    Raises:
        ImportError: The distribution of ``new`` is not installed (the message names it),
            or ``new`` needs an extra that is missing (its own message names the extra).
    """
    target = _import_target(old, new)
    warnings.warn(
        f"{old} is deprecated: import {new} instead "
        "('python -m energy_migrate migrate PATH' rewrites the imports of a service).",
        DeprecationWarning,
        stacklevel=_importer_stacklevel(),
    )
    children = frozenset(submodules)

    def __getattr__(name: str) -> Any:  # noqa: N807 - the PEP 562 hook
        if name in children:
            return importlib.import_module(f"{old}.{name}")
        return getattr(target, name)

    def __dir__() -> list[str]:  # noqa: N807 - the PEP 562 hook
        return sorted(set(dir(target)) | children)

    return __getattr__, __dir__, list(getattr(target, "__all__", ()))
