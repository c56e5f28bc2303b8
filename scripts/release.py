#!/usr/bin/env python3
"""Release energy-libs distributions to the platform's private package index (stdlib only).

One distribution per tag: a tag ``<distribution>-v<version>`` (``energy-auth-v0.2.0``)
releases packages/<distribution> at that version, and only when ``hatch version`` in
that folder reports the same version.

Commands::

    python scripts/release.py check-tag energy-auth-v0.2.0
    python scripts/release.py release energy-auth-v0.2.0 --repo https://pypi.internal/
    python scripts/release.py publish --repo https://pypi.internal/ dist/

``publish`` uploads only the files the index lacks: it reads the index's simple page
(``/simple/<name>/``) first and skips files already listed there; an upload answered
with 409 Conflict (pypiserver's answer to a re-upload) also counts as already present.
A re-run after a partial failure therefore publishes exactly what is missing.

Credentials come from the environment, as for ``hatch publish``: ``HATCH_INDEX_USER``
and ``HATCH_INDEX_AUTH`` (password or token); ``HATCH_INDEX_REPO`` is the default for
``--repo``. They never appear on the command line or in the output.

Exit codes: 0 done (also when nothing was missing), 1 refused or failed (the message
says why and what to do), 2 bad usage.
"""

from __future__ import annotations

import argparse
import base64
import email
import email.message
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ROOT / "packages"
TIMEOUT = 60.0

# <distribution>-v<version>; the version is a PEP 440 public version (no local part).
_TAG = re.compile(
    r"^(?P<distribution>[a-z0-9]+(?:-[a-z0-9]+)*)"
    r"-v(?P<version>\d+(?:\.\d+)*(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?)$"
)
# Core-metadata fields sent with an upload, as the legacy upload API names them.
_SINGLE_FIELDS = {
    "Metadata-Version": "metadata_version",
    "Name": "name",
    "Version": "version",
    "Summary": "summary",
    "Author": "author",
    "Author-email": "author_email",
    "License": "license",
    "License-Expression": "license_expression",
    "Requires-Python": "requires_python",
    "Description-Content-Type": "description_content_type",
}
_MULTI_FIELDS = {
    "Classifier": "classifiers",
    "Requires-Dist": "requires_dist",
    "Provides-Extra": "provides_extra",
    "Project-URL": "project_urls",
}


class ReleaseError(Exception):
    """A release step was refused or failed; the message says why and what to do."""


@dataclass(frozen=True)
class ReleaseTag:
    """A parsed release tag.

    Attributes:
        distribution: Distribution name, e.g. ``energy-auth``.
        version: Version the tag claims, e.g. ``0.2.0``.
    """

    distribution: str
    version: str

    def __str__(self) -> str:
        """The tag as written: ``<distribution>-v<version>``."""
        return f"{self.distribution}-v{self.version}"


@dataclass
class PublishReport:
    """What ``publish`` did with each file.

    Attributes:
        uploaded: Files the index did not have and now has.
        skipped: Files the index already had (listed, or answered 409 to the upload).
    """

    uploaded: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def normalize_name(name: str) -> str:
    """Normalize a distribution name as PEP 503 does (``Energy_Auth`` -> ``energy-auth``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_tag(tag: str) -> ReleaseTag:
    """Parse a release tag ``<distribution>-v<version>``; a ``refs/tags/`` prefix is accepted.

    Args:
        tag: The tag, e.g. ``energy-auth-v0.2.0`` or ``refs/tags/energy-auth-v0.2.0``.

    Returns:
        The distribution and version it names.

    Raises:
        ReleaseError: The tag does not have that form.

    Example:
        >>> parse_tag("energy-auth-v0.2.0")
        ReleaseTag(distribution='energy-auth', version='0.2.0')
    """
    bare = tag.strip().removeprefix("refs/tags/")
    match = _TAG.fullmatch(bare)
    if match is None:
        raise ReleaseError(
            f"malformed release tag {tag!r}: expected <distribution>-v<version>, "
            "e.g. energy-auth-v0.2.0 (lower-case name, 'v', then a version such as 1.2.3 or 1.2.3rc1)"
        )
    return ReleaseTag(match["distribution"], match["version"])


def find_hatch() -> str:
    """Locate hatch: ``$HATCH``, next to this interpreter, on PATH, then the repo's .venv."""
    candidates = [
        os.environ.get("HATCH"),
        str(Path(sys.executable).parent / "hatch"),
        shutil.which("hatch"),
        str(ROOT / ".venv" / "bin" / "hatch"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ReleaseError("hatch was not found: run `python3 dev.py hatch --version` once, or set $HATCH")


def _hatch(hatch: str, args: Sequence[str], folder: Path) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HATCH_INDEX_")}
    result = subprocess.run(
        [hatch, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise ReleaseError(f"`hatch {' '.join(args)}` failed in {folder}:\n{result.stderr.strip()}")
    return result.stdout


def hatch_version(folder: Path, hatch: str) -> str:
    """Return the version ``hatch version`` reports in ``folder``."""
    lines = _hatch(hatch, ["version"], folder).strip().splitlines()
    if not lines:
        raise ReleaseError(f"`hatch version` printed nothing in {folder}")
    return lines[-1].strip()


def check_tag(tag: str, *, hatch: str, packages: Path = PACKAGES) -> ReleaseTag:
    """Check that ``tag`` names a distribution of this repo at the version it has now.

    Args:
        tag: The release tag, ``<distribution>-v<version>``.
        hatch: Path of the hatch executable.
        packages: The folder holding one folder per distribution.

    Returns:
        The parsed tag.

    Raises:
        ReleaseError: The tag is malformed, names no distribution here, or its version
            differs from what ``hatch version`` reports for that distribution.
    """
    parsed = parse_tag(tag)
    folder = packages / parsed.distribution
    if not (folder / "pyproject.toml").is_file():
        known = ", ".join(sorted(p.name for p in packages.iterdir() if (p / "pyproject.toml").is_file()))
        raise ReleaseError(f"tag {tag!r} names {parsed.distribution!r}, which is not a distribution here ({known})")
    current = hatch_version(folder, hatch)
    if current != parsed.version:
        raise ReleaseError(
            f"tag {tag!r} says {parsed.distribution} {parsed.version}, but `hatch version` in "
            f"{folder.relative_to(packages.parent)} reports {current}: bump it there "
            f"(`hatch version {parsed.version}`) and commit before tagging, or tag {parsed.distribution}-v{current}"
        )
    return parsed


def find_artifacts(paths: Iterable[Path]) -> list[Path]:
    """Wheels and sdists among ``paths`` (files, or folders searched one level deep), sorted.

    Raises:
        ReleaseError: A path does not exist, or nothing to publish was found.
    """
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.iterdir() if p.is_file() and _is_artifact(p))
        elif path.is_file() and _is_artifact(path):
            found.add(path)
        elif not path.exists():
            raise ReleaseError(f"{path} does not exist")
    if not found:
        raise ReleaseError(f"no wheel or sdist in {', '.join(map(str, paths))}: build first (`hatch build`)")
    return sorted(found)


def _is_artifact(path: Path) -> bool:
    return path.name.endswith((".whl", ".tar.gz"))


def read_metadata(artifact: Path) -> email.message.Message:
    """Read the core metadata of a wheel (``METADATA``) or an sdist (``PKG-INFO``)."""
    try:
        if artifact.name.endswith(".whl"):
            with zipfile.ZipFile(artifact) as archive:
                names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
                if len(names) == 1:
                    return email.message_from_bytes(archive.read(names[0]))
        else:
            with tarfile.open(artifact) as archive:
                members = [m for m in archive.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")]
                handle = archive.extractfile(members[0]) if len(members) == 1 else None
                if handle is not None:
                    return email.message_from_bytes(handle.read())
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise ReleaseError(f"cannot read {artifact}: {exc}; rebuild it") from exc
    raise ReleaseError(f"{artifact} has no core metadata file; rebuild it with `hatch build`")


class _Links(HTMLParser):
    """Collects ``<a href>`` file names and their sha256 fragments from a simple page."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            url = urllib.parse.urlsplit(href)
            name = urllib.parse.unquote(url.path.rsplit("/", 1)[-1])
            digest = url.fragment.removeprefix("sha256=") if url.fragment.startswith("sha256=") else None
            self.files[name] = digest


def _open(request: urllib.request.Request) -> tuple[int, bytes]:
    if urllib.parse.urlsplit(request.full_url).scheme not in {"http", "https"}:
        raise ReleaseError(f"{request.full_url} is not an http(s) URL")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - scheme checked above
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ReleaseError(f"cannot reach {request.full_url}: {exc}; check the index URL and the network") from exc


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def index_files(simple_url: str, project: str, *, authorization: str | None = None) -> dict[str, str | None]:
    """Files the index lists for ``project`` (name -> sha256 or None); empty when it has none.

    Args:
        simple_url: The simple index, e.g. ``https://pypi.internal/simple/``.
        project: Distribution name (normalized here).
        authorization: ``Authorization`` header value, for indexes that protect reads too.

    Raises:
        ReleaseError: The index cannot be reached or answers with an error other than 404.
    """
    url = urllib.parse.urljoin(simple_url.rstrip("/") + "/", f"{normalize_name(project)}/")
    headers = {"Accept": "text/html"} | ({"Authorization": authorization} if authorization else {})
    status, body = _open(urllib.request.Request(url, headers=headers))  # noqa: S310 - scheme checked in _open
    if status == 404:
        return {}
    if status in {401, 403}:
        raise ReleaseError(f"the index refused to list {url} ({status}): check HATCH_INDEX_USER/HATCH_INDEX_AUTH")
    if status != 200:
        raise ReleaseError(f"the index answered {status} for {url}; check --simple-url")
    parser = _Links()
    parser.feed(body.decode("utf-8", errors="replace"))
    return parser.files


def _form(artifact: Path, metadata: email.message.Message) -> list[tuple[str, str]]:
    fields = [(":action", "file_upload"), ("protocol_version", "1")]
    for header, name in _SINGLE_FIELDS.items():
        if (value := metadata.get(header)) is not None:
            fields.append((name, str(value)))
    for header, name in _MULTI_FIELDS.items():
        fields.extend((name, str(value)) for value in metadata.get_all(header) or [])
    if body := metadata.get_payload():
        fields.append(("description", str(body)))
    if artifact.name.endswith(".whl"):
        fields += [("filetype", "bdist_wheel"), ("pyversion", artifact.name.split("-")[-3])]
    else:
        fields += [("filetype", "sdist"), ("pyversion", "source")]
    fields.append(("sha256_digest", hashlib.sha256(artifact.read_bytes()).hexdigest()))
    return fields


def _multipart(fields: list[tuple[str, str]], artifact: Path) -> tuple[bytes, str]:
    boundary = f"energy-release-{os.urandom(12).hex()}"
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{artifact.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    parts += [artifact.read_bytes(), f"\r\n--{boundary}--\r\n".encode()]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(artifact: Path, *, repo: str, user: str, password: str) -> bool:
    """Upload one file with the legacy upload API; return False when the index already has it (409).

    Raises:
        ReleaseError: The credentials are refused or the index fails the upload.
    """
    body, content_type = _multipart(_form(artifact, read_metadata(artifact)), artifact)
    request = urllib.request.Request(  # noqa: S310 - scheme checked in _open
        repo,
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Authorization": _basic(user, password)},
    )
    status, answer = _open(request)
    if status in {200, 201}:
        return True
    if status == 409:
        return False
    if status in {401, 403}:
        raise ReleaseError(
            f"the index refused the credentials for {artifact.name} ({status}): check HATCH_INDEX_USER/HATCH_INDEX_AUTH"
        )
    detail = answer.decode("utf-8", errors="replace").strip()[:300]
    raise ReleaseError(f"uploading {artifact.name} to {repo} failed with {status}: {detail}")


def default_simple_url(repo: str) -> str:
    """The simple index of an upload URL: ``/simple/`` at its host (pypiserver, devpi-like setups)."""
    return urllib.parse.urljoin(repo, "/simple/")


def publish(
    paths: Iterable[Path], *, repo: str, user: str, password: str, simple_url: str | None = None
) -> PublishReport:
    """Upload the wheels and sdists among ``paths`` that the index lacks.

    Args:
        paths: Files or folders (searched one level deep) holding wheels and sdists.
        repo: Upload URL of the index.
        user: Upload user name.
        password: Upload password or token (never printed).
        simple_url: Simple index URL; defaults to ``/simple/`` on the upload host.

    Returns:
        Which files were uploaded and which the index already had.

    Raises:
        ReleaseError: Nothing to publish, the index is unreachable, the credentials are
            refused, or a file is on the index with different content (the version was
            rebuilt from other sources: bump it instead).
    """
    simple = simple_url or default_simple_url(repo)
    report = PublishReport()
    listed: dict[str, dict[str, str | None]] = {}
    for artifact in find_artifacts(paths):
        project = normalize_name(str(read_metadata(artifact)["Name"]))
        if project not in listed:
            listed[project] = index_files(simple, project, authorization=_basic(user, password))
        if artifact.name in listed[project]:
            remote = listed[project][artifact.name]
            local = hashlib.sha256(artifact.read_bytes()).hexdigest()
            if remote is not None and remote != local:
                raise ReleaseError(
                    f"{artifact.name} is already on the index with different content: "
                    "a published version is immutable, bump the version and release again"
                )
            report.skipped.append(artifact)
            print(f"skip    {artifact.name} (already on the index)")
        elif upload(artifact, repo=repo, user=user, password=password):
            report.uploaded.append(artifact)
            print(f"upload  {artifact.name}")
        else:
            report.skipped.append(artifact)
            print(f"skip    {artifact.name} (index answered 409: already there)")
    return report


def build(tag: ReleaseTag, out: Path, *, hatch: str, packages: Path = PACKAGES) -> list[Path]:
    """Build the wheel and sdist of the tagged distribution into ``out``; return their paths."""
    _hatch(hatch, ["build", "-t", "wheel", "-t", "sdist", str(out)], packages / tag.distribution)
    prefix = f"{tag.distribution.replace('-', '_')}-{tag.version}"
    built = sorted(
        p
        for p in out.iterdir()
        if p.name == f"{prefix}.tar.gz" or (p.name.startswith(f"{prefix}-") and p.suffix == ".whl")
    )
    if len(built) != 2:
        raise ReleaseError(f"expected a wheel and an sdist of {prefix} in {out}, found {[p.name for p in built]}")
    return built


def _credentials() -> tuple[str, str]:
    user, password = os.environ.get("HATCH_INDEX_USER"), os.environ.get("HATCH_INDEX_AUTH")
    if not user or not password:
        raise ReleaseError("set HATCH_INDEX_USER and HATCH_INDEX_AUTH (upload user and password/token) to publish")
    return user, password


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-tag", help="check a tag against the distribution's `hatch version`")
    check.add_argument("tag")
    repo_help = "upload URL of the private index (default: $HATCH_INDEX_REPO)"
    simple_help = "simple index URL (default: /simple/ on the upload host)"
    release = commands.add_parser("release", help="check a tag, build its distribution and publish it")
    release.add_argument("tag")
    release.add_argument("--repo", default=os.environ.get("HATCH_INDEX_REPO"), help=repo_help)
    release.add_argument("--simple-url", help=simple_help)
    release.add_argument("--dist-dir", type=Path, help="keep the built files here (default: a temporary folder)")
    pub = commands.add_parser("publish", help="upload the wheels/sdists the index lacks")
    pub.add_argument("paths", nargs="+", type=Path, help="files, or folders holding them")
    pub.add_argument("--repo", default=os.environ.get("HATCH_INDEX_REPO"), help=repo_help)
    pub.add_argument("--simple-url", help=simple_help)
    return parser


def _release(args: argparse.Namespace) -> PublishReport:
    hatch = find_hatch()
    tag = check_tag(args.tag, hatch=hatch)
    user, password = _credentials()
    with tempfile.TemporaryDirectory(prefix="energy-release-") as scratch:
        out = args.dist_dir or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        artifacts = build(tag, out, hatch=hatch)
        return publish(artifacts, repo=args.repo, user=user, password=password, simple_url=args.simple_url)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit code (see the module docstring)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in {"release", "publish"} and not args.repo:
        parser.error("--repo is required (or set HATCH_INDEX_REPO)")
    try:
        if args.command == "check-tag":
            tag = check_tag(args.tag, hatch=find_hatch())
            print(f"{tag}: {tag.distribution} {tag.version} matches `hatch version`")
            return 0
        if args.command == "release":
            report = _release(args)
        else:
            user, password = _credentials()
            report = publish(args.paths, repo=args.repo, user=user, password=password, simple_url=args.simple_url)
    except ReleaseError as exc:
        print(f"release.py: {exc}", file=sys.stderr)
        return 1
    print(f"published {len(report.uploaded)} file(s), {len(report.skipped)} already on the index")
    return 0


if __name__ == "__main__":
    sys.exit(main())
