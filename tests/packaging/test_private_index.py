"""Build, publish to a private index and install each distribution alone, as a release does.

The expected dependency closure of each distribution is not hard-coded: a small resolver
walks the ``Requires-Dist`` metadata of the built wheels and of the wheelhouse (one
version per name), with markers and extras evaluated. The installs themselves are done
by uv against the private index only, so the two must agree.
"""

from __future__ import annotations

import email
import json
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

# The first run fills the wheelhouse from the public index: allow for a slow network.
pytestmark = [pytest.mark.packaging, pytest.mark.timeout(300)]

DISTRIBUTIONS = (
    "energy-common",
    "energy-auth",
    "energy-monitoring",
    "energy-messaging",
    "energy-migrate",
    "energy-libs-compat",
    "energy-libs",
)
LEAVES = ("energy-common", "energy-auth", "energy-monitoring", "energy-messaging")
# The migration tools: installed alone like the leaves, never in a leaf's closure.
TOOLS = ("energy-migrate", "energy-libs-compat")
TOOL_ONLY = {"energy-migrate", "energy-libs-compat", "libcst"}
# Modules imported in the fresh venv beyond the import packages (the shim's packages
# import nothing; its alias modules import energy-common).
PROBED_MODULES = {"energy-libs-compat": ("libs.common.exceptions", "infrastructure.logging")}
# The key facts, stated explicitly on top of the computed closures (distribution names).
FORBIDDEN = {
    "energy-messaging": {"fastapi", "sqlalchemy", "redis", "httpx"},
    "energy-common": {"fastapi", "sqlalchemy", "redis", "httpx", "psutil", "asyncpg"},
}
EXTRAS_OF_META = {
    "energy-common",
    "energy-auth",
    "energy-monitoring",
    "energy-messaging",
    "fastapi",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "redis",
    "httpx",
    "psutil",
    "bcrypt",
    "amqtt",
    "opentelemetry-exporter-otlp-proto-http",
}
# Run in each fresh venv: import the packages, then report where every loaded module came
# from: the top-level names of those loaded from site-packages, and any file loaded from
# neither site-packages nor the standard library. Modules without a file (built-ins, and
# in-memory ones such as cffi's ``_openssl``) load no code from disk and are left out.
PROBE = """
import importlib, json, os, re, sys, sysconfig
for name in sys.argv[1:]:
    importlib.import_module(name)
paths = sysconfig.get_paths()
site = {os.path.realpath(paths[key]) for key in ("purelib", "platlib")}
stdlib = {os.path.realpath(paths[key]) for key in ("stdlib", "platstdlib")}
site_tops, elsewhere = set(), set()
for module in list(sys.modules.values()):
    locations = [getattr(module, "__file__", None), *(getattr(module, "__path__", None) or [])]
    for location in filter(None, locations):
        real = os.path.realpath(location)
        home = next((root for root in site if real.startswith(root + os.sep)), None)
        if home is not None:
            site_tops.add(os.path.relpath(real, home).split(os.sep)[0].split(".")[0])
        elif not any(real.startswith(root + os.sep) for root in stdlib):
            elsewhere.add(real)
import importlib.metadata as metadata
dists = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in metadata.distributions()}
print(json.dumps({"modules": sorted(site_tops), "elsewhere": sorted(elsewhere), "distributions": dists}))
"""


# --------------------------------------------------------------------------- resolver


@dataclass(frozen=True)
class WheelInfo:
    """What the resolver needs from one wheel: name, version, requirements, import names."""

    name: str
    version: Version
    requires: tuple[Requirement, ...]
    top_level: frozenset[str]
    metadata: Any
    files: frozenset[str]


def read_wheel(path: Path) -> WheelInfo:
    """Read a wheel's METADATA and derive its top-level import names from its file list."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        (meta_name,) = [n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(meta_name))
    top: set[str] = set()
    for name in names:
        parts = name.split("/")
        if parts[0].endswith(".data") and len(parts) > 3 and parts[1] in {"purelib", "platlib"}:
            parts = parts[2:]
        elif parts[0].endswith((".dist-info", ".data")):
            continue
        if len(parts) > 1:
            top.add(parts[0])
        elif parts[0].endswith((".py", ".so", ".pyd")):
            top.add(parts[0].split(".")[0])
    return WheelInfo(
        name=canonicalize_name(metadata["Name"]),
        version=Version(metadata["Version"]),
        requires=tuple(Requirement(text) for text in metadata.get_all("Requires-Dist") or []),
        top_level=frozenset(top),
        metadata=metadata,
        files=frozenset(names),
    )


def closure(root: Requirement, index: dict[str, WheelInfo]) -> set[str]:
    """Distribution names that installing ``root`` must bring, from declared metadata alone."""
    seen: set[tuple[str, str]] = set()
    result: set[str] = set()
    pending = [root]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        assert name in index, f"{name} (needed for {root}) is neither built nor in the wheelhouse"
        info = index[name]
        assert requirement.specifier.contains(info.version, prereleases=True), f"{info.version} vs {requirement}"
        result.add(name)
        for extra in ("", *sorted(requirement.extras)):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            pending.extend(
                dependency
                for dependency in info.requires
                if dependency.marker is None or dependency.marker.evaluate({"extra": extra})
            )
    return result


# --------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Installed:
    """One fresh virtualenv holding a distribution installed alone from the private index."""

    name: str
    expected: frozenset[str]
    expected_modules: frozenset[str]
    distributions: dict[str, str]
    modules: frozenset[str]
    elsewhere: tuple[str, ...]


@pytest.fixture(scope="module")
def published(built_distributions, wheelhouse, private_index_factory, hatch_bin, run_cmd):
    """A private index serving the wheelhouse, with every built distribution published by ``hatch publish``."""
    index = private_index_factory(wheelhouse)
    artifacts = [path for dist in built_distributions.values() for path in (dist.wheel, dist.sdist)]
    run_cmd(
        [hatch_bin, "publish", "--no-prompt", *artifacts],
        cwd=built_distributions["energy-common"].folder,
        env=index.publish_env(),
    )
    return index


@pytest.fixture(scope="module")
def resolver_index(built_distributions, wheelhouse) -> dict[str, WheelInfo]:
    """Every wheel an install may use, by distribution name (one version each)."""
    index: dict[str, WheelInfo] = {}
    for path in wheelhouse.glob("*.whl"):
        info = read_wheel(path)
        assert info.name not in index, f"two versions of {info.name} in the wheelhouse"
        assert info.name not in DISTRIBUTIONS, (
            f"{path.name}: a public package with one of our names (dependency confusion)"
        )
        index[info.name] = info
    index.update((name, read_wheel(dist.wheel)) for name, dist in built_distributions.items())
    return index


@pytest.fixture(scope="module")
def installs(  # noqa: PLR0917 - pytest injects fixtures by name
    published, built_distributions, resolver_index, uv_bin, tmp_path_factory, run_cmd, clean_env_factory
):
    """Each distribution installed alone, with an exact pin, into its own fresh venv (concurrently)."""
    work = tmp_path_factory.mktemp("venvs")
    cache = work / "uv-cache"  # fresh per session: nothing comes from an earlier run

    def install(name: str) -> Installed:
        dist = built_distributions[name]
        venv = work / name
        # pypiserver's stdlib server handles one request at a time with a short listen
        # backlog: a few connections per installer avoid SYN retries that cost seconds.
        env = clean_env_factory(UV_CACHE_DIR=str(cache), UV_CONCURRENT_DOWNLOADS="4")
        run_cmd([uv_bin, "venv", "--no-config", "--quiet", "--python", sys.executable, venv], env=env)
        python = venv / "bin" / "python"
        pin = f"{name}=={dist.hatch_version}"
        run_cmd(
            [
                uv_bin, "pip", "install", "--no-config", "--quiet", "--python", python,
                "--index-url", published.simple_url, "--index-strategy", "first-index", "--no-build", pin,
            ],
            env=env,
        )  # fmt: skip
        expected = closure(Requirement(pin), resolver_index)
        if dist.import_names:
            imports = [*dist.import_names, *PROBED_MODULES.get(name, ())]
        else:
            imports = [import_name for leaf in LEAVES for import_name in built_distributions[leaf].import_names]
        report = json.loads(run_cmd([python, "-I", "-c", PROBE, *imports], env=env))
        return Installed(
            name=name,
            expected=frozenset(expected),
            expected_modules=frozenset().union(*(resolver_index[n].top_level for n in expected)),
            distributions=report["distributions"],
            modules=frozenset(report["modules"]),
            elsewhere=tuple(report["elsewhere"]),
        )

    # The meta-package first: it fills the session's uv cache with every wheel, so the
    # leaf and tool installs that follow (concurrently) download (almost) nothing again.
    results = {"energy-libs": install("energy-libs")}
    with ThreadPoolExecutor(max_workers=len(LEAVES)) as pool:
        results.update((result.name, result) for result in pool.map(install, (*LEAVES, *TOOLS)))
    return results


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_wheel_and_sdist_carry_version_classifier_and_marker(built_distributions, name):
    """Each wheel has py.typed (not the meta-package), the do-not-upload classifier and the ``hatch version``."""
    dist = built_distributions[name]
    info = read_wheel(dist.wheel)
    assert str(info.version) == dist.hatch_version
    assert "Private :: Do Not Upload" in (info.metadata.get_all("Classifier") or [])
    if dist.import_names:
        assert {f"{import_name}/py.typed" for import_name in dist.import_names} <= info.files
        assert info.top_level == set(dist.import_names)
    else:
        assert info.top_level == set(), "the meta-package ships no code"
    with tarfile.open(dist.sdist) as sdist:
        (pkg_info,) = [m for m in sdist.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")]
        handle = sdist.extractfile(pkg_info)
        assert handle is not None
        assert email.message_from_bytes(handle.read())["Version"] == dist.hatch_version


def test_index_holds_exactly_what_was_published(published, built_distributions):
    """``hatch publish`` put every wheel and sdist on the private index, and nothing else."""
    expected = sorted(path.name for dist in built_distributions.values() for path in (dist.wheel, dist.sdist))
    assert published.files() == expected


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_installed_alone_brings_exactly_its_declared_closure(installs, built_distributions, name):
    """Installing one pinned distribution brings exactly the closure its metadata declares, at ``hatch version``."""
    installed = installs[name]
    assert set(installed.distributions) == installed.expected
    for sibling in installed.expected & set(DISTRIBUTIONS):
        assert installed.distributions[sibling] == built_distributions[sibling].hatch_version


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_import_loads_nothing_outside_the_closure(installs, name):
    """``import energy_<pkg>`` works and loads only modules of distributions in its closure."""
    installed = installs[name]
    outside = installed.modules - installed.expected_modules
    assert not outside, f"import of {name} loaded modules from outside its closure: {sorted(outside)}"
    assert not installed.elsewhere, f"import of {name} loaded files from outside the venv: {installed.elsewhere}"


@pytest.mark.parametrize(("name", "forbidden"), sorted(FORBIDDEN.items()))
def test_light_distributions_stay_light(installs, name, forbidden):
    """energy-messaging and energy-common core neither install nor import the heavy web/db/cache/http stack."""
    installed = installs[name]
    assert not forbidden & set(installed.distributions)
    assert not forbidden & installed.modules


@pytest.mark.parametrize("name", ["energy-libs", *LEAVES])
def test_migration_tools_stay_out_of_the_libraries(installs, name):
    """No library (nor the meta-package) installs or imports libcst, the codemod or the shim."""
    installed = installs[name]
    assert not TOOL_ONLY & set(installed.distributions)
    assert not {"libcst", "energy_migrate", "libs", "infrastructure"} & installed.modules


def test_migration_tools_bring_only_what_they_need(installs):
    """energy-migrate needs none of the libraries; the shim alone brings energy-common core and nothing heavy."""
    migrate = installs["energy-migrate"]
    assert not set(LEAVES) & set(migrate.distributions)
    assert "libcst" in migrate.distributions
    compat = installs["energy-libs-compat"]
    assert set(LEAVES) & set(compat.distributions) == {"energy-common"}
    assert not FORBIDDEN["energy-common"] & set(compat.distributions)
    assert {"libs", "infrastructure", "energy_common"} <= compat.modules


def test_meta_package_brings_all_four_with_all_extras(installs, resolver_index):
    """energy-libs installs the four libraries and every extra of each, and all four import."""
    installed = installs["energy-libs"]
    assert set(installed.distributions) >= EXTRAS_OF_META
    for leaf in LEAVES:
        info = resolver_index[leaf]
        every_extra = Requirement(f"{leaf}[{','.join(info.metadata.get_all('Provides-Extra') or [])}]")
        assert closure(every_extra, resolver_index) <= set(installed.distributions)
        assert leaf.replace("-", "_") in installed.modules


def test_missing_version_is_not_fetched_from_anywhere_else(published, uv_bin, tmp_path, run_cmd, clean_env_factory):
    """A pin the private index lacks fails: the installer looks at no other index."""
    env = clean_env_factory(UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    run_cmd([uv_bin, "venv", "--no-config", "--quiet", "--python", sys.executable, tmp_path / "venv"], env=env)
    argv = [
        uv_bin, "pip", "install", "--no-config", "--python", tmp_path / "venv" / "bin" / "python",
        "--index-url", published.simple_url, "--no-build", "energy-messaging==99.0.0",
    ]  # fmt: skip
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "energy-messaging" in result.stderr
