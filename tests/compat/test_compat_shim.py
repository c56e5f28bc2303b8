"""Tests for energy-libs-compat: every old import path of the seed works, warning once, as the new module."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator

import pytest

# Every module of the seed's layout (its README) and the module it now is.
OLD_TO_NEW = {
    "libs.common": "energy_common",
    "libs.common.exceptions": "energy_common.exceptions",
    "libs.common.middleware": "energy_common.middleware",
    "libs.common.auth": "energy_auth",
    "libs.common.utils": "energy_common.utils",
    "libs.common.health": "energy_common.health",
    "libs.common.http_client": "energy_common.http_client",
    "libs.common.database": "energy_common.database",
    "libs.common.responses": "energy_common.responses",
    "libs.common.cache": "energy_common.cache",
    "libs.monitoring": "energy_monitoring",
    "libs.monitoring.metrics": "energy_monitoring.metrics",
    "libs.monitoring.tracing": "energy_monitoring.tracing",
    "libs.messaging": "energy_messaging",
    "libs.messaging.mqtt": "energy_messaging.mqtt",
    "infrastructure.logging": "energy_common.logging",
}
# The names the seed README imports from each old module.
SEED_NAMES = {
    "libs.common.exceptions": ["ValidationError", "ResourceNotFoundError"],
    "libs.common.http_client": ["ServiceClient"],
    "libs.common.database": ["BaseRepository"],
    "libs.common.responses": ["APIResponse", "ErrorResponse"],
    "libs.common.cache": ["CacheManager", "RateLimitCache"],
    "libs.common.health": ["HealthChecker", "DatabaseHealthCheck", "RedisHealthCheck"],
    "libs.monitoring.metrics": ["increment_counter", "set_gauge", "time_it"],
    "libs.monitoring.tracing": ["get_tracer", "trace"],
    "libs.messaging.mqtt": ["MQTTManager", "DeviceManager"],
    "libs.common.auth": ["TokenManager", "PermissionChecker"],
    "infrastructure.logging": ["setup_logging", "ServiceLogger"],
}


DEPRECATED = " is deprecated: import "


def forget_shim() -> None:
    """Drop every shim module from the import cache, so the next import runs (and warns) again."""
    for name in [n for n in sys.modules if n.split(".")[0] in {"libs", "infrastructure"}]:
        del sys.modules[name]


@pytest.fixture(autouse=True)
def fresh_shim() -> Iterator[None]:
    """Each test imports the shim from scratch."""
    forget_shim()
    yield
    forget_shim()


def deprecations(record: pytest.WarningsRecorder) -> dict[str, str]:
    """The recorded DeprecationWarnings of the shim, by the old module they name."""
    found = {}
    for warning in record:
        text = str(warning.message)
        if issubclass(warning.category, DeprecationWarning) and " is deprecated: import " in text:
            old = text.split(" ", 1)[0]
            assert old not in found, f"two warnings for {old}"
            found[old] = text
    return found


@pytest.mark.parametrize(("old", "new"), sorted(OLD_TO_NEW.items()))
def test_every_old_path_imports_with_one_warning_naming_the_new_import(old: str, new: str) -> None:
    """Importing an old path works, warns once for it (and once per old parent) naming the new import, then never again."""
    with pytest.warns(DeprecationWarning, match=DEPRECATED) as record:
        module = importlib.import_module(old)
    warned = deprecations(record)
    assert f"{old} is deprecated: import {new} instead" in warned[old]
    assert "energy_migrate" in warned[old]
    parents = {p for p in OLD_TO_NEW if old.startswith(p + ".")}
    assert set(warned) == {old} | parents
    target = importlib.import_module(new)
    for name in getattr(target, "__all__", ()):
        assert getattr(module, name) is getattr(target, name), name
    assert module.__all__ == list(getattr(target, "__all__", ()))
    assert set(module.__all__) <= set(dir(module))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.import_module(old)  # cached: silent


@pytest.mark.parametrize(("old", "names"), sorted(SEED_NAMES.items()))
def test_seed_names_are_the_new_objects(old: str, names: list[str]) -> None:
    """``from <old path> import <name>`` as the seed README writes it gives the very object of the new package."""
    new = importlib.import_module(OLD_TO_NEW[old])
    namespace: dict[str, object] = {}
    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        exec(f"from {old} import {', '.join(names)}", namespace)  # noqa: S102 - the seed's own import line
    for name in names:
        assert namespace[name] is getattr(new, name)


def test_warning_points_at_the_importing_line() -> None:
    """The warning is attributed to the module that imported the old path, not to the shim or importlib."""
    with pytest.warns(DeprecationWarning, match=DEPRECATED) as record:
        import libs.common.responses  # noqa: F401 - the import under test
    (warning,) = [w for w in record if "libs.common.responses is deprecated" in str(w.message)]
    assert warning.filename == __file__


def test_package_attribute_access_imports_the_old_submodule() -> None:
    """``from libs.common import auth`` and ``libs.messaging.mqtt`` reach the aliases of energy_auth / energy_messaging.mqtt."""
    import energy_auth
    import energy_messaging.mqtt

    with pytest.warns(DeprecationWarning, match=DEPRECATED) as record:
        exec("import libs.messaging; from libs.common import auth; mqtt = libs.messaging.mqtt", namespace := {})  # noqa: S102
    libs, auth, mqtt = namespace["libs"], namespace["auth"], namespace["mqtt"]
    assert auth.TokenManager is energy_auth.TokenManager
    assert mqtt.MQTTManager is energy_messaging.mqtt.MQTTManager
    assert libs.messaging.EventBus is energy_messaging.EventBus
    assert {"libs.common", "libs.common.auth", "libs.messaging", "libs.messaging.mqtt"} <= set(deprecations(record))
    with pytest.raises(AttributeError):
        _ = libs.messaging.no_such_name


def test_star_import_follows_the_new_all() -> None:
    """``from libs.common.exceptions import *`` binds exactly the new module's public names."""
    import energy_common.exceptions

    namespace: dict[str, object] = {}
    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        exec("from libs.common.exceptions import *", namespace)  # noqa: S102
    namespace.pop("__builtins__")
    namespace.pop("__warningregistry__", None)  # the warning was attributed to this namespace
    assert sorted(namespace) == sorted(energy_common.exceptions.__all__)


def run(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (to block a distribution or an extra)."""
    argv = [sys.executable, "-W", "ignore::DeprecationWarning", "-c", textwrap.dedent(code)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_missing_distribution_names_what_to_install() -> None:
    """An old path whose new distribution is not installed fails with an ImportError naming it and the shim's extra."""
    result = run(
        """
        import sys
        sys.modules["energy_auth"] = None
        try:
            import libs.common.auth
        except ImportError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'energy-auth' (or 'energy-libs-compat[auth]')" in result.stdout


def test_missing_extra_keeps_the_library_message() -> None:
    """An old path whose new module needs a missing extra fails with the library's own message naming the extra."""
    result = run(
        """
        import sys
        sys.modules["redis"] = None
        try:
            import libs.common.cache
        except ImportError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'energy-common[cache]'" in result.stdout
