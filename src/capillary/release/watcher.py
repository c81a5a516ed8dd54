"""The release watcher: PCGR's upstream releases against the release catalogue.

Upstream is a GitHub releases API URL (configurable, so tests and mirrors serve their own); the
catalogue is `catalogue/pcgr_releases.yml` through `capillary.release.catalogue`. A release upstream that
the catalogue does not know, newer than every catalogue release, is *new*: the watcher prints the
catalogue entry to fill in (bundle date, VEP version, checksums cannot be guessed; they are
marked TODO and `confirmed: false`).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the catalogue needs PyYAML, which the worker image does not install
    from capillary.release.catalogue import Catalogue, Release

DEFAULT_URL = "https://api.github.com/repos/sigven/pcgr/releases"
URL_ENV = "CAPILLARY_RELEASES_URL"
MAX_PAGES = 10
_TAG = re.compile(r"^v?(?P<version>\d+\.\d+\.\d+)$")
_NEXT_LINK = re.compile(r'<(?P<url>[^>]+)>;\s*rel="next"')


class UpstreamError(RuntimeError):
    """The releases URL could not be read or did not hold a GitHub releases list."""


@dataclass(frozen=True, order=True)
class UpstreamRelease:
    """One upstream release whose tag is a version (`v2.3.2` or `2.3.2`)."""

    key: tuple[int, int, int]
    version: str = field(compare=False)
    tag: str = field(compare=False)
    published_at: str = field(compare=False, default="")
    url: str = field(compare=False, default="")
    prerelease: bool = field(compare=False, default=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "tag": self.tag,
            "published_at": self.published_at,
            "url": self.url,
            "prerelease": self.prerelease,
        }


@dataclass
class ReleaseReport:
    """What upstream has that the catalogue does not, and the reverse."""

    new: list[UpstreamRelease]
    older_untracked: list[UpstreamRelease]
    known: list[str]
    not_upstream: list[str]
    skipped_tags: list[str]
    entries: dict[str, str]

    @property
    def up_to_date(self) -> bool:
        return not self.new

    def as_dict(self) -> dict[str, Any]:
        return {
            "up_to_date": self.up_to_date,
            "new": [r.as_dict() for r in self.new],
            "older_untracked": [r.as_dict() for r in self.older_untracked],
            "known": self.known,
            "not_upstream": self.not_upstream,
            "skipped_tags": self.skipped_tags,
            "entries": self.entries,
        }


def version_key(version: str) -> tuple[int, int, int]:
    m = _TAG.match(version)
    if m is None:
        raise ValueError(f"not a release version: {version!r} (expected X.Y.Z or vX.Y.Z)")
    major, minor, patch = (int(p) for p in m.group("version").split("."))
    return (major, minor, patch)


def parse_releases(
    payload: object, *, include_prereleases: bool = False
) -> tuple[list[UpstreamRelease], list[str]]:
    """GitHub's release objects to releases; returns (releases, tags that are not versions)."""
    if not isinstance(payload, list):
        raise UpstreamError(f"expected a JSON list of releases, got {type(payload).__name__}")
    releases: list[UpstreamRelease] = []
    skipped: list[str] = []
    for i, item in enumerate(payload):
        if not isinstance(item, dict) or not isinstance(item.get("tag_name"), str):
            raise UpstreamError(f"release [{i}] has no tag_name")
        tag = item["tag_name"]
        if item.get("draft") or (item.get("prerelease") and not include_prereleases):
            skipped.append(tag)
            continue
        m = _TAG.match(tag)
        if m is None:
            skipped.append(tag)
            continue
        version = m.group("version")
        releases.append(
            UpstreamRelease(
                key=version_key(version),
                version=version,
                tag=tag,
                published_at=str(item.get("published_at") or ""),
                url=str(item.get("html_url") or ""),
                prerelease=bool(item.get("prerelease")),
            )
        )
    return sorted(set(releases), reverse=True), skipped


def fetch_releases(url: str, *, timeout: float = 20.0, token: str | None = None) -> list[object]:
    """Every page of a GitHub releases list (following `Link: rel="next"`, at most MAX_PAGES)."""
    items: list[object] = []
    next_url: str | None = url
    pages = 0
    while next_url and pages < MAX_PAGES:
        if not next_url.startswith(("http://", "https://")):
            raise UpstreamError(f"{next_url}: only http and https URLs are read")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            next_url,
            headers={"Accept": "application/vnd.github+json", "User-Agent": "capillary-release-watcher"},
        )
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                body = response.read()
                link = response.headers.get("Link", "")
        except urllib.error.HTTPError as exc:
            raise UpstreamError(f"{next_url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise UpstreamError(f"{next_url}: {exc}") from exc
        try:
            page = json.loads(body)
        except ValueError as exc:
            raise UpstreamError(f"{next_url}: not JSON ({exc})") from exc
        if not isinstance(page, list):
            raise UpstreamError(f"{next_url}: expected a JSON list of releases, got {type(page).__name__}")
        items.extend(page)
        m = _NEXT_LINK.search(link)
        next_url = m.group("url") if m else None
        pages += 1
    return items


def compare(upstream: list[UpstreamRelease], catalogue: Catalogue, skipped: list[str]) -> ReleaseReport:
    known = set(catalogue.versions)
    newest_known = max(version_key(v) for v in catalogue.versions)
    new = [r for r in upstream if r.version not in known and r.key > newest_known]
    older = [r for r in upstream if r.version not in known and r.key <= newest_known]
    upstream_versions = {r.version for r in upstream}
    template = catalogue.current
    return ReleaseReport(
        new=new,
        older_untracked=older,
        known=sorted(known & upstream_versions, key=version_key, reverse=True),
        not_upstream=sorted(known - upstream_versions, key=version_key, reverse=True),
        skipped_tags=skipped,
        entries={r.version: catalogue_entry(r, template) for r in new},
    )


def catalogue_entry(release: UpstreamRelease, template: Release) -> str:
    """The YAML to add under `releases:` for `release`, modelled on the current entry.

    Install URLs follow the template's, with the version substituted; what cannot be derived
    (the bundle date, the VEP version, sizes and checksums) is marked TODO, and the entry is
    `confirmed: false` until someone checks it against upstream's pcgr_vars.py and docs.
    """
    old, new = template.version, release.version

    def swap(value: str) -> str:
        return value.replace(old, new)

    lines = [
        f'  - version: "{new}"',
        "    current: false",
        "    confirmed: false",
        "    notes: >-",
        f"      Upstream tag {release.tag} published {release.published_at or 'on an unknown date'}"
        f" ({release.url or 'no URL'}). TODO: confirm the bundle date, VEP version, sizes and",
        "      checksums against upstream's pcgr_vars.py and docs, then set confirmed: true.",
        "    install:",
        "      conda:",
        f"        channel: {template.install.conda_channel}",
        "        lock_files:",
        *(f"          {name}: {swap(url)}" for name, url in sorted(template.install.lock_files.items())),
        "      container:",
        f"        image: {swap(template.install.image)}",
        '        digest: ""  # TODO: sha256 digest of the image',
        "    bundle:",
        '      version: "TODO"  # YYYYMMDD of the reference bundle this release needs',
        f"      version_file: {template.bundle.version_file}",
        "      assemblies:",
    ]
    for assembly, artifact in sorted(template.bundle.assemblies.items()):
        lines += [
            f"        {assembly}:",
            f"          url: TODO  # e.g. {artifact.url}",
            f"          size: {artifact.size}  # TODO: confirm",
            '          sha256: ""',
        ]
    lines += [
        "    vep:",
        f"      version: {template.vep.version}  # TODO: confirm the VEP release paired with {new}",
        "      assemblies:",
    ]
    for assembly, artifact in sorted(template.vep.assemblies.items()):
        lines += [
            f"        {assembly}:",
            f"          url: {artifact.url}  # TODO: confirm",
            f"          size: {artifact.size}",
            '          sha256: ""',
        ]
    lines += [
        "    image:",
        f"      root_volume_gb: {template.root_volume_gb}",
        f"      data_volume_gb: {template.data_volume_gb}",
    ]
    return "\n".join(lines) + "\n"


def check(
    url: str, catalogue: Catalogue, *, include_prereleases: bool = False, token: str | None = None
) -> ReleaseReport:
    upstream, skipped = parse_releases(
        fetch_releases(url, token=token), include_prereleases=include_prereleases
    )
    return compare(upstream, catalogue, skipped)
