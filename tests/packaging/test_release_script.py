"""scripts/release.py: tag parsing, refusal of mismatched tags, publishing only what a real index lacks."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.packaging

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "release.py"


@pytest.fixture(scope="module")
def release() -> ModuleType:
    """scripts/release.py loaded as a module (it is a script, not an installed package)."""
    spec = importlib.util.spec_from_file_location("energy_release_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def cli(hatch_bin, clean_env_factory):
    """Run the script as CI does; returns the completed process (never raises on exit code)."""

    def invoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        run_env = dict(env if env is not None else clean_env_factory())
        run_env["HATCH"] = str(hatch_bin)
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args], env=run_env, capture_output=True, text=True, timeout=120, check=False
        )

    return invoke


@pytest.fixture(scope="module")
def libs_version(hatch_bin, run_cmd) -> str:
    """What ``hatch version`` reports for energy-libs right now.

    The end-to-end release tests use the meta-package: it builds fastest, and its folder
    does not change while other work goes on in the libraries' sources (a rebuild of
    the same sources is byte-identical, which the re-run test relies on).
    """
    folder = SCRIPT.parents[1] / "packages" / "energy-libs"
    return run_cmd([hatch_bin, "version"], cwd=folder).strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("tag", "distribution", "version"),
    [
        ("energy-auth-v0.2.0", "energy-auth", "0.2.0"),
        ("refs/tags/energy-common-v1.0.0rc1", "energy-common", "1.0.0rc1"),
        ("energy-libs-v2.0.0.post1", "energy-libs", "2.0.0.post1"),
        ("energy-messaging-v0.1.0.dev3", "energy-messaging", "0.1.0.dev3"),
    ],
)
def test_parse_tag_reads_distribution_and_version(release, tag, distribution, version):
    """A well-formed tag yields its distribution and version, and prints back without the ref prefix."""
    parsed = release.parse_tag(tag)
    assert (parsed.distribution, parsed.version) == (distribution, version)
    assert str(parsed) == tag.removeprefix("refs/tags/")


@pytest.mark.parametrize(
    "tag",
    [
        "energy-auth-0.2.0",
        "energy_auth-v0.2.0",
        "Energy-Auth-v0.2.0",
        "energy-auth-v",
        "energy-auth-v0.2.0+local",
        "energy-auth-vlatest",
        "v0.2.0",
        "",
    ],
)
def test_parse_tag_refuses_malformed_tags(release, tag):
    """A tag not of the form <distribution>-v<version> is refused with the expected form in the message."""
    with pytest.raises(release.ReleaseError, match=r"malformed release tag .*<distribution>-v<version>"):
        release.parse_tag(tag)


def test_check_tag_accepts_the_current_version(cli, libs_version):
    """check-tag exits 0 for the tag of the version ``hatch version`` reports."""
    result = cli("check-tag", f"energy-libs-v{libs_version}")
    assert result.returncode == 0, result.stderr
    assert "matches" in result.stdout


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("energy-common-v99.0.0", r"reports .*bump it there"),
        ("energy-nothing-v0.1.0", r"not a distribution here \(energy-auth, energy-common"),
        ("energy-common-0.1.0", r"malformed release tag"),
    ],
)
def test_check_tag_refuses_mismatched_unknown_and_malformed_tags(cli, tag, message):
    """check-tag exits 1 with a message saying what is wrong and what to do."""
    result = cli("check-tag", tag)
    assert result.returncode == 1
    assert result.stdout == ""
    assert re.search(message, result.stderr), result.stderr


def test_publish_uploads_only_missing_files_and_rerun_publishes_nothing(
    cli, built_distributions, private_index_factory, tmp_path
):
    """publish skips files the index lists, uploads the rest, and a second run uploads nothing."""
    index = private_index_factory()
    common, auth = built_distributions["energy-common"], built_distributions["energy-auth"]
    first = cli("publish", str(common.wheel), env=index.publish_env())
    assert first.returncode == 0, first.stderr
    assert index.files() == [common.wheel.name]

    folder = tmp_path / "dist"
    folder.mkdir()
    for path in (common.wheel, common.sdist, auth.wheel, auth.sdist):
        shutil.copy2(path, folder)
    second = cli("publish", "--repo", index.url, str(folder), env=index.publish_env())
    assert second.returncode == 0, second.stderr
    assert f"skip    {common.wheel.name} (already on the index)" in second.stdout
    assert "published 3 file(s), 1 already on the index" in second.stdout
    assert index.files() == sorted(path.name for path in folder.iterdir())

    third = cli("publish", str(folder), env=index.publish_env())
    assert third.returncode == 0, third.stderr
    assert "published 0 file(s), 4 already on the index" in third.stdout
    assert "upload  " not in third.stdout


def test_publish_authenticates_reads_on_an_index_that_protects_them(
    release, built_distributions, private_index_factory
):
    """Against an index that also protects listing, publish lists with the credentials and still skips what is there."""
    index = private_index_factory(authenticate="download,list,update")
    sdist = built_distributions["energy-monitoring"].sdist
    first = release.publish([sdist], repo=index.url, user=index.user, password=index.password)
    again = release.publish([sdist], repo=index.url, user=index.user, password=index.password)
    assert (first.uploaded, first.skipped) == ([sdist], [])
    assert (again.uploaded, again.skipped) == ([], [sdist])
    with pytest.raises(release.ReleaseError, match="refused to list"):
        release.index_files(index.simple_url, "energy-monitoring")


def test_reupload_answered_409_counts_as_present(release, built_distributions, private_index_factory):
    """An upload the index refuses with 409 (already there) reports False instead of failing."""
    index = private_index_factory()
    wheel = built_distributions["energy-messaging"].wheel
    assert release.upload(wheel, repo=index.url, user=index.user, password=index.password) is True
    assert release.upload(wheel, repo=index.url, user=index.user, password=index.password) is False
    assert index.files() == [wheel.name]


def test_same_name_different_content_is_refused(release, built_distributions, private_index_factory, tmp_path):
    """A file already published under the same name but with other bytes stops the publish (versions are immutable)."""
    index = private_index_factory()
    wheel = built_distributions["energy-auth"].wheel
    release.publish([wheel], repo=index.url, user=index.user, password=index.password)
    altered = tmp_path / wheel.name
    shutil.copy2(wheel, altered)
    with zipfile.ZipFile(altered, "a") as archive:
        archive.comment = b"rebuilt from other sources"
    with pytest.raises(release.ReleaseError, match="different content: a published version is immutable"):
        release.publish([altered], repo=index.url, user=index.user, password=index.password)


def test_publish_with_wrong_credentials_fails_without_leaking_them(cli, built_distributions, private_index_factory):
    """Refused credentials give exit 1 and a hint, and the password never appears in the output."""
    index = private_index_factory()
    env = index.publish_env() | {"HATCH_INDEX_AUTH": "not-the-password-7c1f"}
    result = cli("publish", str(built_distributions["energy-common"].sdist), env=env)
    assert result.returncode == 1
    assert "refused the credentials" in result.stderr
    assert "HATCH_INDEX_USER/HATCH_INDEX_AUTH" in result.stderr
    assert "not-the-password-7c1f" not in result.stdout + result.stderr
    assert index.files() == []


def test_publish_without_credentials_says_which_variables_to_set(cli, built_distributions, private_index_factory):
    """Without HATCH_INDEX_USER/HATCH_INDEX_AUTH the script exits 1 and names them."""
    index = private_index_factory()
    env = {k: v for k, v in index.publish_env().items() if k not in {"HATCH_INDEX_USER", "HATCH_INDEX_AUTH"}}
    result = cli("publish", str(built_distributions["energy-common"].sdist), env=env)
    assert result.returncode == 1
    assert "set HATCH_INDEX_USER and HATCH_INDEX_AUTH" in result.stderr


def test_release_builds_and_publishes_the_tagged_distribution_once(cli, private_index_factory, libs_version):
    """release checks the tag, builds the wheel and sdist with hatch and publishes them; a re-run publishes nothing."""
    index = private_index_factory()
    tag = f"energy-libs-v{libs_version}"
    first = cli("release", tag, env=index.publish_env())
    assert first.returncode == 0, first.stderr
    assert index.files() == sorted(
        [f"energy_libs-{libs_version}-py3-none-any.whl", f"energy_libs-{libs_version}.tar.gz"]
    )
    again = cli("release", tag, env=index.publish_env())
    assert again.returncode == 0, again.stderr
    assert "published 0 file(s), 2 already on the index" in again.stdout


def test_release_refuses_a_mismatched_tag_before_building(cli, private_index_factory):
    """release of a tag whose version differs from ``hatch version`` exits 1 and publishes nothing."""
    index = private_index_factory()
    result = cli("release", "energy-libs-v99.0.0", env=index.publish_env())
    assert result.returncode == 1
    assert "bump it there" in result.stderr
    assert index.files() == []
