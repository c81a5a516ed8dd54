"""Where PCGR reference data lives on a worker, and what the pcgr_refdata role must fetch.

Layout under the data volume's mountpoint (`/srv/capillary` by default):

    refdata/<bundle>/<assembly>/data/<assembly>/.PCGR_BUNDLE_VERSION   (PCGR's --refdata_dir)
    refdata/current -> <bundle>
    vep/<version>/homo_sapiens/<version>_<GRCh38|GRCh37>/                  (PCGR's --vep_dir)
    vep/current -> <version>
    .downloads/<file>.part                                                 (resumable transfers)

The role (through the `capillary.pcgr.refdata_artifacts` filter), the pcgr role's container
wrapper and the PCGR engine all derive these paths from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from capillary.release.catalogue import CatalogueError, Release

DEFAULT_ROOT = "/srv/capillary"
SOURCES = ("upstream", "s3", "path")


def bundle_dir(root: str, bundle_version: str, assembly: str) -> str:
    return str(PurePosixPath(root) / "refdata" / bundle_version / assembly)


def vep_dir(root: str, vep_version: int | str) -> str:
    return str(PurePosixPath(root) / "vep" / str(vep_version))


def current_refdata_dir(root: str, assembly: str) -> str:
    """PCGR's `--refdata_dir` for the active bundle."""
    return str(PurePosixPath(root) / "refdata" / "current" / assembly)


def current_vep_dir(root: str) -> str:
    """PCGR's `--vep_dir` for the active VEP cache."""
    return str(PurePosixPath(root) / "vep" / "current")


def s3_key(prefix: str, filename: str) -> str:
    """Where the mirror keeps an artifact: `<prefix>/<file name as upstream names it>`."""
    return f"{prefix.strip('/')}/{filename}" if prefix.strip("/") else filename


def artifacts_for(
    release: Release | Mapping[str, Any],
    *,
    root: str = DEFAULT_ROOT,
    assemblies: Sequence[str] = ("grch38",),
    source: str = "upstream",
    base_url: str = "",
    recorded: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One dict per file to fetch: catalogue facts plus where it goes and how it is checked.

    `base_url` replaces the catalogue's host and path (keeping the file name), for a local
    mirror or a test server; `recorded` maps file names to the sha256 the local fact recorded
    from the first verified download, used where the catalogue has none.
    """
    if source not in SOURCES:
        raise CatalogueError(f"source {source!r}: expected one of {', '.join(SOURCES)}")
    rel = release.as_dict() if isinstance(release, Release) else dict(release)
    supported = list(rel["assemblies"])
    out: list[dict[str, Any]] = []
    for assembly in assemblies:
        if assembly not in supported:
            raise CatalogueError(
                f"assembly {assembly!r} is not available for PCGR {rel['version']} "
                f"(catalogue has: {', '.join(supported)})"
            )
    wanted = [a for a in rel["artifacts"] if a["assembly"] in assemblies]
    for art in wanted:
        filename = art["filename"]
        recorded_sha = ((recorded or {}).get(filename) or {}).get("sha256", "") if recorded else ""
        item = {
            "kind": art["kind"],
            "assembly": art["assembly"],
            "version": art["version"],
            "filename": filename,
            "catalogue_url": art["url"],
            "url": f"{base_url.rstrip('/')}/{filename}" if base_url else art["url"],
            "size": art["size"],
            "sha256": art["sha256"] or recorded_sha,
            "sha256_source": "catalogue" if art["sha256"] else ("recorded" if recorded_sha else ""),
            "downloads": str(PurePosixPath(root) / ".downloads"),
        }
        if art["kind"] == "bundle":
            item["dest"] = bundle_dir(root, art["version"], art["assembly"])
            item["member"] = ""
            item["check_file"] = rel["bundle"]["assemblies"][art["assembly"]]["version_path"]
            item["check_content"] = art["version"]
        else:
            cache = rel["vep"]["cache_dirs"][art["assembly"]]
            item["dest"] = str(PurePosixPath(vep_dir(root, art["version"])) / cache)
            item["member"] = cache
            item["check_file"] = ""
            item["check_content"] = ""
        out.append(item)
    return out
