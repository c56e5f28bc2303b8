"""The import mapping from the seed ``libs/`` to the energy-libs packages, and what each needs.

Pure data and pure functions, no libcst: ARCHITECTURE.md's table is :data:`MODULES`;
:data:`FOLDED` lists the seed folders (``libs/common/auth/``, ...) whose submodules
became private, so every public name of a submodule now lives in the package itself
(``libs.common.auth.jwt.TokenManager`` → ``energy_auth.TokenManager``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "DISTRIBUTIONS",
    "EXTRAS",
    "FOLDED",
    "MODULES",
    "NAME_EXTRAS",
    "SEED_MODULES",
    "Requirement",
    "map_module",
    "requirements_for",
]

# Old module prefix -> new module, most specific first.
MODULES: tuple[tuple[str, str], ...] = (
    ("libs.common.auth", "energy_auth"),
    ("libs.common", "energy_common"),
    ("libs.monitoring", "energy_monitoring"),
    ("libs.messaging", "energy_messaging"),
    ("infrastructure.logging", "energy_common.logging"),
)
# Seed folders (packages) whose submodules are not public in the new layout.
FOLDED: frozenset[str] = frozenset(
    {
        "libs.common.auth",
        "libs.common.exceptions",
        "libs.common.middleware",
        "libs.common.utils",
        "libs.common.health",
    }
)
# The modules of the seed (its README's layout): a name imported from a seed package is
# a module only when it is one of these (``from libs.common import auth``).
SEED_MODULES: frozenset[str] = frozenset(
    {
        "libs.common",
        *(
            f"libs.common.{name}"
            for name in (
                "exceptions",
                "middleware",
                "auth",
                "utils",
                "health",
                "http_client",
                "database",
                "responses",
                "cache",
            )
        ),
        "libs.monitoring",
        "libs.monitoring.metrics",
        "libs.monitoring.tracing",
        "libs.messaging",
        "libs.messaging.mqtt",
        "infrastructure.logging",
    }
)
# New top-level import package -> distribution.
DISTRIBUTIONS: dict[str, str] = {
    "energy_common": "energy-common",
    "energy_auth": "energy-auth",
    "energy_monitoring": "energy-monitoring",
    "energy_messaging": "energy-messaging",
}
# New module (and everything below it) -> extras of its distribution it needs.
EXTRAS: dict[str, tuple[str, ...]] = {
    "energy_common.cache": ("cache",),
    "energy_common.cache.web": ("web",),
    "energy_common.apidocs": ("web",),
    "energy_common.database": ("db",),
    "energy_common.timeseries": ("db",),
    "energy_common.http_client": ("http",),
    "energy_common.health.http": ("http",),
    "energy_common.health.memory": ("system",),
    "energy_common.health.router": ("web",),
    "energy_common.middleware": ("web",),
    "energy_common.testing": ("http",),
    "energy_common.utils.web": ("web",),
    "energy_auth.fastapi": ("web",),
    "energy_auth.redis": ("redis",),
    "energy_auth.api_keys_redis": ("redis",),
    "energy_auth.api_keys_sql": ("sql",),
    "energy_auth.broker.fastapi": ("web",),
    "energy_auth.devices.redis": ("redis",),
    "energy_auth.devices.sql": ("sql",),
    "energy_monitoring.web": ("web",),
    "energy_messaging.events.outbox": ("sql",),
    "energy_messaging.events.redis_streams": ("redis",),
    "energy_messaging.redis_registry": ("redis",),
    "energy_messaging.redis_commands": ("redis",),
    "energy_messaging.sql_commands": ("sql",),
}
# Names re-exported lazily by a module that itself needs no extra.
NAME_EXTRAS: dict[tuple[str, str], tuple[str, ...]] = {
    ("energy_common.health", "DatabaseHealthCheck"): ("db",),
    ("energy_common.health", "RedisHealthCheck"): ("cache",),
    ("energy_common.health", "HTTPHealthCheck"): ("http",),
    ("energy_common.health", "MemoryHealthCheck"): ("system",),
    ("energy_common.health", "health_router"): ("web",),
}


def map_module(old: str) -> str | None:
    """Return the new import path of the old module ``old``, or ``None`` if it is not a seed path.

    Example:
        >>> map_module("libs.common.exceptions"), map_module("libs.common.auth.jwt"), map_module("os.path")
        ('energy_common.exceptions', 'energy_auth', None)
    """
    for folded in FOLDED:
        if old.startswith(folded + "."):
            old = folded
            break
    for prefix, new in MODULES:
        if old == prefix or old.startswith(prefix + "."):
            return new + old[len(prefix) :]
    return None


@dataclass(frozen=True, slots=True)
class Requirement:
    """One distribution a migrated service needs, with the extras its imports use.

    Attributes:
        distribution: The distribution name, e.g. ``"energy-common"``.
        extras: Sorted extras.
        modules: The new modules that brought it in (for the report).
    """

    distribution: str
    extras: tuple[str, ...] = ()
    modules: tuple[str, ...] = field(default=())

    def line(self, version: str | None) -> str:
        """A requirements-file line: ``energy-common[cache,db]==0.1.0`` (a compatible range without a version)."""
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        pin = f"=={version}" if version else ">=0.1,<0.2"
        return f"{self.distribution}{extras}{pin}"


def _extras_of(module: str, name: str | None) -> set[str]:
    found: set[str] = set()
    parts = module.split(".")
    for end in range(1, len(parts) + 1):
        found.update(EXTRAS.get(".".join(parts[:end]), ()))
    if name is not None:
        found.update(EXTRAS.get(f"{module}.{name}", ()))  # a submodule imported by name
        found.update(NAME_EXTRAS.get((module, name), ()))
    return found


def requirements_for(used: Iterable[tuple[str, str | None]]) -> list[Requirement]:
    """The distributions (with extras) that imports of ``(new module, name or None)`` need, sorted.

    Example:
        >>> [
        ...     r.line("0.1.0")
        ...     for r in requirements_for([("energy_common.cache", "CacheManager"), ("energy_auth", None)])
        ... ]
        ['energy-auth==0.1.0', 'energy-common[cache]==0.1.0']
    """
    extras: dict[str, set[str]] = {}
    modules: dict[str, set[str]] = {}
    for module, name in used:
        distribution = DISTRIBUTIONS.get(module.split(".")[0])
        if distribution is None:
            continue
        extras.setdefault(distribution, set()).update(_extras_of(module, name))
        modules.setdefault(distribution, set()).add(module)
    return [Requirement(dist, tuple(sorted(extras[dist])), tuple(sorted(modules[dist]))) for dist in sorted(extras)]
