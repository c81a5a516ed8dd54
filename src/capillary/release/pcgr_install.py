"""How the pcgr role installs a PCGR release with conda: the exact commands, on the conda layout
of `capillary.contract.layout.CondaLayout` (`<prefix>/<version>/envs/{pcgr,pcgrr}`, micromamba
in `<prefix>/bin`), which the pcgr engine runs the release from.

The role gets these from the `capillary.pcgr.pcgr_conda_plan` filter; unit tests pin them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from capillary.contract.layout import CONDA_ENVS, CONDA_PREFIX, CondaLayout
from capillary.release.catalogue import Release

ENVS = CONDA_ENVS


def conda_plan(
    release: Release | Mapping[str, Any],
    prefix: str = CONDA_PREFIX,
    lock_base_url: str = "",
) -> dict[str, Any]:
    """Paths, lock-file downloads and `micromamba create` argv for both environments."""
    rel = release.as_dict() if isinstance(release, Release) else dict(release)
    if not prefix.startswith("/"):
        raise ValueError(f"pcgr_conda_prefix {prefix!r}: expected an absolute path")
    layout = CondaLayout(PurePosixPath(prefix))
    version = rel["version"]
    micromamba = str(layout.micromamba)
    envs: list[dict[str, Any]] = []
    for env in ENVS:
        url = rel["install"]["lock_files"][env]
        name = url.rsplit("/", 1)[1]
        lock = str(layout.locks_dir(version) / name)
        path = str(layout.env(version, env))
        envs.append(
            {
                "name": env,
                "lock_url": f"{lock_base_url.rstrip('/')}/{name}" if lock_base_url else url,
                "lock_file": lock,
                "path": path,
                "marker": f"{path}/conda-meta/history",
                "create": [
                    micromamba,
                    "create",
                    "--yes",
                    "--root-prefix",
                    str(layout.prefix),
                    "--prefix",
                    path,
                    "--file",
                    lock,
                ],
            }
        )
    pcgr_env = str(layout.env(version, "pcgr"))
    return {
        "prefix": prefix,
        "micromamba": micromamba,
        "locks_dir": str(layout.locks_dir(version)),
        "envs_dir": str(layout.envs_dir(version)),
        "envs": envs,
        "pcgr_env": pcgr_env,
        "pcgr_bin": f"{pcgr_env}/bin/pcgr",
    }
