"""The PCGR release catalogue: typed access to `catalogue/pcgr_releases.yml`, its one parser.

The roles read it through the `capillary.pcgr.pcgr_release` lookup, Packer through
`pkrvars_for`, the release watcher through `load_catalogue`. Every error names the file and
the field at fault, e.g. ``releases[1].bundle.assemblies.grch38.size: expected an integer``.

The file ships inside the package (`capillary/release/data/pcgr_releases.yml`, a symlink in the
source tree to the repository's one `catalogue/pcgr_releases.yml` that the wheel build follows),
so an installed package, its CLI and the collection's lookup read it wherever they are installed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from capillary.contract.assemblies import ASSEMBLIES

ENV_OVERRIDE = "CAPILLARY_CATALOGUE"
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_BUNDLE = re.compile(r"^\d{8}$")
_SHA256 = re.compile(r"^(?:[0-9a-f]{64})?$")
_DIGEST = re.compile(r"^(?:sha256:[0-9a-f]{64})?$")


class CatalogueError(ValueError):
    """The catalogue file is missing, malformed, or has no such release."""


@dataclass(frozen=True)
class Artifact:
    """One downloadable file: a bundle or a VEP cache for one assembly."""

    url: str
    size: int
    sha256: str = ""

    @property
    def filename(self) -> str:
        """The file's name, the last part of its URL path (mirrors keep it unchanged)."""
        return PurePosixPath(urlsplit(self.url).path).name


@dataclass(frozen=True)
class Bundle:
    version: str
    version_file: str
    assemblies: dict[str, Artifact]

    def version_path(self, assembly: str) -> str:
        """Where the bundle's version file sits, relative to the unpacked bundle."""
        return self.version_file.format(assembly=assembly)


@dataclass(frozen=True)
class Vep:
    version: int
    assemblies: dict[str, Artifact]
    in_bundle: bool = False

    def cache_dir(self, assembly: str) -> str:
        """The cache's directory inside the unpacked tarball: `homo_sapiens/115_GRCh38`."""
        return f"homo_sapiens/{self.version}_{'GRCh38' if assembly == 'grch38' else 'GRCh37'}"


@dataclass(frozen=True)
class Install:
    conda_channel: str
    lock_files: dict[str, str]
    image: str
    digest: str = ""

    @property
    def image_ref(self) -> str:
        """The image reference to pull: by digest when the catalogue pins one, else by tag."""
        if self.digest:
            return f"{self.image.rsplit(':', 1)[0]}@{self.digest}"
        return self.image


@dataclass(frozen=True)
class Release:
    version: str
    current: bool
    confirmed: bool
    notes: str
    install: Install
    bundle: Bundle
    vep: Vep
    root_volume_gb: int
    data_volume_gb: int

    @property
    def assemblies(self) -> tuple[str, ...]:
        return tuple(a for a in ASSEMBLIES if a in self.bundle.assemblies)

    def artifacts(self, assemblies: tuple[str, ...] | list[str] | None = None) -> list[dict[str, Any]]:
        """Every file to fetch for `assemblies` (all by default), bundle first, as plain dicts."""
        out: list[dict[str, Any]] = []
        for assembly in assemblies or self.assemblies:
            if assembly not in self.bundle.assemblies:
                raise CatalogueError(
                    f"release {self.version}: assembly {assembly!r} is not in the catalogue "
                    f"(supported: {', '.join(self.assemblies)})"
                )
            art = self.bundle.assemblies[assembly]
            out.append(
                {
                    "kind": "bundle",
                    "assembly": assembly,
                    "version": self.bundle.version,
                    "filename": art.filename,
                    **asdict(art),
                }
            )
            if not self.vep.in_bundle:
                vep = self.vep.assemblies[assembly]
                out.append(
                    {
                        "kind": "vep",
                        "assembly": assembly,
                        "version": str(self.vep.version),
                        "filename": vep.filename,
                        **asdict(vep),
                    }
                )
        return out

    def as_dict(self) -> dict[str, Any]:
        """The release as plain data (what the Ansible lookup returns)."""
        data = asdict(self)
        data["install"]["image_ref"] = self.install.image_ref
        data["assemblies"] = list(self.assemblies)
        data["artifacts"] = self.artifacts()
        for assembly in self.assemblies:
            data["bundle"]["assemblies"][assembly]["filename"] = self.bundle.assemblies[assembly].filename
            data["bundle"]["assemblies"][assembly]["version_path"] = self.bundle.version_path(assembly)
            if assembly in self.vep.assemblies:
                data["vep"]["assemblies"][assembly]["filename"] = self.vep.assemblies[assembly].filename
        data["vep"]["cache_dirs"] = {a: self.vep.cache_dir(a) for a in self.assemblies}
        return data


@dataclass(frozen=True)
class Catalogue:
    path: Path
    releases: tuple[Release, ...] = field(default_factory=tuple)

    def release(self, version: str) -> Release:
        """The release `version`; "current" means the one marked `current: true`."""
        if version == "current":
            return self.current
        for rel in self.releases:
            if rel.version == version:
                return rel
        known = ", ".join(r.version for r in self.releases)
        raise CatalogueError(f"{self.path}: no PCGR release {version!r} in the catalogue (known: {known})")

    @property
    def current(self) -> Release:
        return next(r for r in self.releases if r.current)

    @property
    def versions(self) -> list[str]:
        return [r.version for r in self.releases]


# The catalogue as package data: in a checkout a symlink to catalogue/pcgr_releases.yml, in an
# installed wheel the file itself.
PACKAGED = Path(__file__).parent / "data" / "pcgr_releases.yml"


def default_path() -> Path:
    """`$CAPILLARY_CATALOGUE`, else the catalogue shipped inside this package."""
    override = os.environ.get(ENV_OVERRIDE)
    if override:
        return Path(override)
    return PACKAGED.resolve()  # in a checkout: the file to edit, catalogue/pcgr_releases.yml


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read and validate the catalogue at `path` (default: `default_path()`)."""
    where = Path(path) if path else default_path()
    try:
        raw = yaml.safe_load(where.read_text())
    except FileNotFoundError:
        raise CatalogueError(f"{where}: catalogue file not found (set {ENV_OVERRIDE} to its path)") from None
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{where}: not valid YAML: {exc}") from None
    return parse_catalogue(raw, where)


def parse_catalogue(raw: object, where: Path) -> Catalogue:
    doc = _Reader(where)
    top = doc.mapping(raw, "")
    if doc.integer(top, "schema", "") != 1:
        raise CatalogueError(f"{where}: schema: expected 1")
    items = top.get("releases")
    if not isinstance(items, list) or not items:
        raise CatalogueError(f"{where}: releases: expected a non-empty list")
    releases = tuple(_release(doc, item, f"releases[{i}]") for i, item in enumerate(items))
    seen: set[str] = set()
    for rel in releases:
        if rel.version in seen:
            raise CatalogueError(f"{where}: releases: version {rel.version!r} appears twice")
        seen.add(rel.version)
    currents = [r.version for r in releases if r.current]
    if len(currents) != 1:
        raise CatalogueError(
            f"{where}: releases: exactly one release must have current: true (found {currents or 'none'})"
        )
    return Catalogue(path=where, releases=releases)


def _release(doc: _Reader, raw: object, at: str) -> Release:
    m = doc.mapping(raw, at)
    version = doc.string(m, "version", at, _VERSION, "a version like 2.3.2")
    install = doc.mapping(m.get("install"), f"{at}.install")
    conda = doc.mapping(install.get("conda"), f"{at}.install.conda")
    locks = doc.mapping(conda.get("lock_files"), f"{at}.install.conda.lock_files")
    for env in ("pcgr", "pcgrr"):
        doc.string(locks, env, f"{at}.install.conda.lock_files", re.compile(r"^https?://"), "a URL")
    container = doc.mapping(install.get("container"), f"{at}.install.container")
    bundle_raw = doc.mapping(m.get("bundle"), f"{at}.bundle")
    bundle_at = f"{at}.bundle"
    bundle = Bundle(
        version=doc.string(bundle_raw, "version", bundle_at, _BUNDLE, "a date like 20260620"),
        version_file=doc.string(bundle_raw, "version_file", bundle_at),
        assemblies=_artifacts(doc, bundle_raw, bundle_at, required=True),
    )
    vep_raw = doc.mapping(m.get("vep"), f"{at}.vep")
    in_bundle = bool(vep_raw.get("in_bundle", False))
    vep = Vep(
        version=doc.integer(vep_raw, "version", f"{at}.vep"),
        assemblies=_artifacts(doc, vep_raw, f"{at}.vep", required=not in_bundle),
        in_bundle=in_bundle,
    )
    if not in_bundle and set(vep.assemblies) != set(bundle.assemblies):
        raise CatalogueError(
            f"{doc.where}: {at}.vep.assemblies: must cover the bundle's assemblies "
            f"({', '.join(sorted(bundle.assemblies))})"
        )
    image = doc.mapping(m.get("image"), f"{at}.image")
    return Release(
        version=version,
        current=bool(m.get("current", False)),
        confirmed=bool(m.get("confirmed", False)),
        notes=str(m.get("notes", "") or ""),
        install=Install(
            conda_channel=doc.string(conda, "channel", f"{at}.install.conda"),
            lock_files={k: str(v) for k, v in locks.items()},
            image=doc.string(
                container,
                "image",
                f"{at}.install.container",
                re.compile(r"^\S+:\S+$"),
                "an image reference with a tag",
            ),
            digest=doc.string(
                container,
                "digest",
                f"{at}.install.container",
                _DIGEST,
                "empty or sha256:<64 hex>",
                required=False,
            ),
        ),
        bundle=bundle,
        vep=vep,
        root_volume_gb=doc.integer(image, "root_volume_gb", f"{at}.image"),
        data_volume_gb=doc.integer(image, "data_volume_gb", f"{at}.image"),
    )


def _artifacts(doc: _Reader, parent: Mapping[str, Any], at: str, *, required: bool) -> dict[str, Artifact]:
    raw = doc.mapping(parent.get("assemblies", {}), f"{at}.assemblies")
    if required and not raw:
        raise CatalogueError(f"{doc.where}: {at}.assemblies: expected at least one assembly")
    out: dict[str, Artifact] = {}
    for assembly, item in raw.items():
        here = f"{at}.assemblies.{assembly}"
        if assembly not in ASSEMBLIES:
            raise CatalogueError(f"{doc.where}: {here}: unknown assembly (expected one of {ASSEMBLIES})")
        a = doc.mapping(item, here)
        out[assembly] = Artifact(
            url=doc.string(a, "url", here, re.compile(r"^(?:https?|s3)://\S+/[^/\s]+$"), "a URL to a file"),
            size=doc.integer(a, "size", here),
            sha256=doc.string(a, "sha256", here, _SHA256, "empty or 64 lowercase hex digits", required=False),
        )
    return out


class _Reader:
    """Field access that raises `CatalogueError` naming the file and the field."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def fail(self, at: str, message: str) -> CatalogueError:
        return CatalogueError(f"{self.where}: {at}: {message}")

    def mapping(self, value: object, at: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(at or "(top level)", "expected a mapping")
        return value

    def string(
        self,
        m: Mapping[str, Any],
        key: str,
        at: str,
        pattern: re.Pattern[str] | None = None,
        expected: str = "a string",
        *,
        required: bool = True,
    ) -> str:
        here = f"{at}.{key}" if at else key
        value = m.get(key)
        if value is None:
            if required:
                raise self.fail(here, f"missing (expected {expected})")
            return ""
        if not isinstance(value, str):
            raise self.fail(here, f"expected {expected}, got {type(value).__name__} {value!r}")
        if pattern is not None and not pattern.match(value):
            raise self.fail(here, f"expected {expected}, got {value!r}")
        return value

    def integer(self, m: Mapping[str, Any], key: str, at: str) -> int:
        here = f"{at}.{key}" if at else key
        value = m.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(here, f"expected a non-negative integer, got {value!r}")
        return value


def pkrvars_for(release: Release) -> str:
    """The Packer pins of `release`, as the text of `packer/releases/<version>.pkrvars.hcl`."""
    pins: list[tuple[str, str | int]] = [
        ("pcgr_version", release.version),
        ("bundle_version", release.bundle.version),
        ("vep_version", release.vep.version),
        ("root_volume_size", release.root_volume_gb),
        ("data_volume_size", release.data_volume_gb),
    ]
    width = max(len(k) for k, _ in pins)
    lines = [
        f"# PCGR {release.version}: generated from catalogue/pcgr_releases.yml by",
        "# capillary.release.catalogue.pkrvars_for; edit the catalogue, not this file.",
    ]
    for key, value in pins:
        rendered = f'"{value}"' if isinstance(value, str) else str(value)
        lines.append(f"{key.ljust(width)} = {rendered}")
    return "\n".join(lines) + "\n"
