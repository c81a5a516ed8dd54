"""What the pcgr_refdata role must fetch, and where each artifact goes on a worker.

The layout itself (`refdata/<bundle>/<assembly>`, `vep/<version>`, `.downloads/`, the `current`
links) is `capillary.contract.layout.WorkerLayout`'s; this module lists the catalogue's artifacts
of a release against it, for the role (through the `capillary.pcgr.refdata_artifacts` filter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from capillary.contract.layout import ARTIFACT_STAMP, DATA_ROOT, WorkerLayout
from capillary.release.catalogue import CatalogueError, Release

SOURCES = ("upstream", "s3", "path")


def bundle_dir(root: str, bundle_version: str, assembly: str) -> str:
    """Where a bundle of `assembly` is installed under the data root `root`."""
    return str(WorkerLayout(PurePosixPath(root)).bundle_dir(bundle_version, assembly))


def vep_dir(root: str, vep_version: int | str) -> str:
    """Where a VEP cache release is installed under the data root `root`."""
    return str(WorkerLayout(PurePosixPath(root)).vep_dir(vep_version))


def artifacts_for(
    release: Release | Mapping[str, Any],
    *,
    root: str = DATA_ROOT,
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
    layout = WorkerLayout(PurePosixPath(root))
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
            "downloads": str(layout.downloads),
            "part": str(layout.part_file(filename)),
            "stamp": ARTIFACT_STAMP,
        }
        if art["kind"] == "bundle":
            item["dest"] = str(layout.bundle_dir(art["version"], art["assembly"]))
            item["member"] = ""
            item["check_file"] = rel["bundle"]["assemblies"][art["assembly"]]["version_path"]
            item["check_content"] = art["version"]
        else:
            cache = rel["vep"]["cache_dirs"][art["assembly"]]
            item["dest"] = str(layout.vep_dir(art["version"]) / cache)
            item["member"] = cache
            item["check_file"] = ""
            item["check_content"] = ""
        out.append(item)
    return out
