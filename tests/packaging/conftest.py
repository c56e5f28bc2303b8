"""Fixtures of the packaging tests: built distributions, a wheelhouse and private indexes.

What the platform does on release, reduced to loopback:

- ``built_distributions`` builds the wheel and sdist of every distribution with
  ``hatch build`` (once per session, into a temporary folder);
- ``wheelhouse`` holds the wheels of every third-party requirement the distributions
  declare (with all extras), cached across runs under the user's cache folder and keyed
  by the requirement set, the Python version and the platform;
- ``private_index_factory`` starts pypiserver on 127.0.0.1 with authenticated uploads
  (an htpasswd file in a temporary folder, a random password handed to clients through
  environment variables only) and no fallback to the public index.

These tests need hatch, uv and pypiserver: they run in the dev env. The helpers below
are local copies of the tiny ones in ``tests/conftest.py`` (conftest modules are not
importable under ``--import-mode=importlib``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PACKAGES = REPO / "packages"
# Leaves first, then the migration tools, the meta-package last; the import packages of
# each (none: the meta-package ships no code).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "energy-common": ("energy_common",),
    "energy-auth": ("energy_auth",),
    "energy-monitoring": ("energy_monitoring",),
    "energy-messaging": ("energy_messaging",),
    "energy-migrate": ("energy_migrate",),
    "energy-libs-compat": ("libs", "infrastructure"),
    "energy-libs": (),
}
# Environment variables that could point a client at another index or config file.
_SCRUBBED_PREFIXES = ("PIP_", "UV_", "HATCH_INDEX_", "PYTHONPATH")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unavailable(reason: str) -> None:
    """Skip (laptop) or fail (CI, ``ENERGY_REQUIRE_SERVICES=1``) because a tool is missing."""
    if os.environ.get("ENERGY_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (ENERGY_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without index/config variables, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_SCRUBBED_PREFIXES)}
    env.update(extra)
    return env


def run(argv: Sequence[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command to completion (bounded) and return its stdout; fail with its output."""
    result = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, argv))} exited with {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
            pytrace=False,
        )
    return result.stdout


def find_tool(name: str) -> Path | None:
    """Locate a console script: next to this interpreter, on PATH, then in the repo's .venv."""
    candidates = [Path(sys.executable).parent / name, shutil.which(name), REPO / ".venv" / "bin" / name]
    for candidate in candidates:
        if candidate is not None and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def hatch_bin() -> Path:
    """Path of the hatch executable (dev env, else the bootstrap .venv)."""
    path = find_tool("hatch")
    if path is None:
        unavailable("hatch is not installed (dev env or .venv/bin)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def uv_bin() -> Path:
    """Path of the uv executable (dev env, else the bootstrap .venv)."""
    path = find_tool("uv")
    if path is None:
        unavailable("uv is not installed (dev env or .venv/bin)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def run_cmd() -> Callable[..., str]:
    """The ``run`` helper above, for test modules (conftest is not importable)."""
    return run


@pytest.fixture(scope="session")
def clean_env_factory() -> Callable[..., dict[str, str]]:
    """The ``clean_env`` helper above, for test modules."""
    return clean_env


# --------------------------------------------------------------------------- build


@dataclass(frozen=True)
class BuiltDistribution:
    """One distribution built from packages/<name> by ``hatch build``."""

    name: str
    import_names: tuple[str, ...]
    folder: Path
    hatch_version: str
    wheel: Path
    sdist: Path


def _build_one(hatch: Path, name: str, out: Path) -> BuiltDistribution:
    folder = PACKAGES / name
    version = run([hatch, "version"], cwd=folder).strip().splitlines()[-1]
    target = out / name
    run([hatch, "build", "-t", "wheel", "-t", "sdist", target], cwd=folder)
    (wheel,) = target.glob("*.whl")
    (sdist,) = target.glob("*.tar.gz")
    return BuiltDistribution(name, DISTRIBUTIONS[name], folder, version, wheel, sdist)


@pytest.fixture(scope="session")
def built_distributions(hatch_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltDistribution]:
    """Wheel and sdist of every distribution, built with ``hatch build`` in its folder."""
    out = tmp_path_factory.mktemp("dist")
    # One hatch per distribution at a time (its build env is per project), all in parallel.
    with ThreadPoolExecutor(max_workers=len(DISTRIBUTIONS)) as pool:
        built = list(pool.map(lambda name: _build_one(hatch_bin, name, out), DISTRIBUTIONS))
    return {dist.name: dist for dist in built}


# --------------------------------------------------------------------------- wheelhouse


def third_party_requirements() -> list[str]:
    """Every third-party requirement the distributions declare, extras included, sorted."""
    found: set[str] = set()
    for name in DISTRIBUTIONS:
        project = tomllib.loads((PACKAGES / name / "pyproject.toml").read_text())["project"]
        requirements = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            requirements.extend(extra)
        found.update(text for text in requirements if canonicalize_name(Requirement(text).name) not in DISTRIBUTIONS)
    return sorted(found)


def wheelhouse_root() -> Path:
    """``$ENERGY_WHEELHOUSE_DIR``, else ``$XDG_CACHE_HOME``/``~/.cache`` + energy-libs-wheelhouse."""
    if configured := os.environ.get("ENERGY_WHEELHOUSE_DIR"):
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "energy-libs-wheelhouse"


def _pip_command(uv: Path, scratch: Path) -> list[str]:
    """A pip to fill the wheelhouse with: this interpreter's, else one in a seeded uv venv."""
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, check=False, timeout=60)
    if probe.returncode == 0:
        return [sys.executable, "-m", "pip"]
    seeded = scratch / "pip-venv"
    run([uv, "venv", "--no-config", "--seed", "--quiet", "--python", sys.executable, seeded])
    return [str(seeded / "bin" / "python"), "-m", "pip"]


@pytest.fixture(scope="session")
def wheelhouse(uv_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of all third-party requirements (one version each), cached across runs.

    The cache key covers the requirement set, the Python version and the platform, so a
    changed requirement gets a new wheelhouse; a half-filled one is never used (it is
    filled in a scratch folder and renamed into place).
    """
    requirements = third_party_requirements()
    key_source = json.dumps(
        {
            "requirements": requirements,
            "python": platform.python_version(),
            "implementation": sys.implementation.name,
            "platform": sysconfig.get_platform(),
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    root = wheelhouse_root()
    final = root / key
    if (final / ".complete").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    scratch = tmp_path_factory.mktemp("wheelhouse-fill")
    staging = root / f".{key}.{os.getpid()}.{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        (scratch / "requirements.txt").write_text("\n".join(requirements) + "\n")
        # pip keeps the user's own index configuration (their proxy of the public index);
        # --prefer-binary builds nothing that has a wheel.
        run(
            [
                *_pip_command(uv_bin, scratch),
                "wheel",
                "--quiet",
                "--prefer-binary",
                "--wheel-dir",
                staging,
                "-r",
                scratch / "requirements.txt",
            ],
            env={key: value for key, value in os.environ.items() if not key.startswith("PYTHONPATH")},
        )
        (staging / ".complete").write_text(key_source + "\n")
        with contextlib.suppress(OSError):  # another run won the race: use its copy
            staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


# --------------------------------------------------------------------------- private index


@dataclass
class PrivateIndex:
    """A pypiserver on loopback: uploads need ``user``/``password``, reads are open."""

    port: int
    user: str
    password: str
    upload_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        """Upload URL (the legacy upload API lives at the root of pypiserver)."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def simple_url(self) -> str:
        """The PEP 503 simple index that installers use."""
        return f"http://127.0.0.1:{self.port}/simple/"

    def publish_env(self) -> dict[str, str]:
        """Environment for ``hatch publish`` / ``scripts/release.py`` (no credentials on argv)."""
        return clean_env(HATCH_INDEX_REPO=self.url, HATCH_INDEX_USER=self.user, HATCH_INDEX_AUTH=self.password)

    def files(self) -> list[str]:
        """Names of the files uploaded so far (the upload folder, not the wheelhouse)."""
        return sorted(path.name for path in self.upload_dir.iterdir() if path.is_file())


def _wait_healthy(index: PrivateIndex, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if index.process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{index.url}health", timeout=1) as response:  # noqa: S310 - loopback http
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    index.process.kill()
    raise RuntimeError(f"pypiserver did not come up on port {index.port}:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="session")
def private_index_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., PrivateIndex]]:
    """Factory: ``make(*extra_roots)`` starts a pypiserver serving its upload folder plus ``extra_roots``.

    Uploads need the index's credentials; ``make(authenticate="download,list,update")``
    protects reads too, as some private indexes do.
    """
    try:
        with warnings.catch_warnings():
            # passlib imports the stdlib crypt module, deprecated since Python 3.11.
            warnings.simplefilter("ignore", DeprecationWarning)
            import passlib.apache
    except ImportError as exc:
        unavailable(f"passlib is not installed in this environment: {exc}")
    if importlib.util.find_spec("pypiserver") is None:
        unavailable("pypiserver is not installed in this environment")
    started: list[PrivateIndex] = []

    def make(*extra_roots: Path, authenticate: str = "update") -> PrivateIndex:
        base = tmp_path_factory.mktemp("pypiserver")
        upload_dir = base / "packages"
        upload_dir.mkdir()
        user, password = "release-bot", secrets.token_urlsafe(18)
        htpasswd = passlib.apache.HtpasswdFile(str(base / "htpasswd"), new=True, default_scheme="apr_md5_crypt")
        htpasswd.set_password(user, password)
        htpasswd.save()
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "pypiserver",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--authenticate",
            authenticate,
            "--passwords",
            str(base / "htpasswd"),
            "--disable-fallback",
            "--hash-algo",
            "sha256",
            # Lets installers reuse the simple pages within one session (fewer round trips
            # to the single-threaded server).
            "--cache-control",
            "300",
            str(upload_dir),
            *map(str, extra_roots),
        ]
        log = base / "pypiserver.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=clean_env(), cwd=base)
        index = PrivateIndex(port, user, password, upload_dir, process)
        started.append(index)
        _wait_healthy(index, log)
        return index

    yield make
    for index in started:
        index.process.terminate()
        try:
            index.process.wait(10)
        except subprocess.TimeoutExpired:
            index.process.kill()
            index.process.wait(10)
