"""How the pcgr role installs a PCGR release with conda: the layout and the exact commands.

PCGR 2.x finds its R environment as `dirname($CONDA_PREFIX)/pcgrr`, so the two environments
are siblings under one versioned prefix:

    <prefix>/bin/micromamba
    <prefix>/<version>/locks/{pcgr,pcgrr}-linux-64.lock
    <prefix>/<version>/envs/pcgr     (python + VEP workflow; `pcgr` lives in its bin/)
    <prefix>/<version>/envs/pcgrr    (R + quarto reporting)

The role gets these from the `capillary.pcgr.pcgr_conda_plan` filter; unit tests pin them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from capillary.release.catalogue import Release

ENVS = ("pcgr", "pcgrr")


def conda_plan(
    release: Release | Mapping[str, Any],
    prefix: str = "/opt/pcgr",
    lock_base_url: str = "",
) -> dict[str, Any]:
    """Paths, lock-file downloads and `micromamba create` argv for both environments."""
    rel = release.as_dict() if isinstance(release, Release) else dict(release)
    if not prefix.startswith("/"):
        raise ValueError(f"pcgr_conda_prefix {prefix!r}: expected an absolute path")
    root = PurePosixPath(prefix)
    version = rel["version"]
    micromamba = str(root / "bin" / "micromamba")
    envs_dir = root / version / "envs"
    locks_dir = root / version / "locks"
    envs: list[dict[str, Any]] = []
    for env in ENVS:
        url = rel["install"]["lock_files"][env]
        name = url.rsplit("/", 1)[1]
        lock = str(locks_dir / name)
        path = str(envs_dir / env)
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
                    str(root),
                    "--prefix",
                    path,
                    "--file",
                    lock,
                ],
            }
        )
    pcgr_env = str(envs_dir / "pcgr")
    return {
        "prefix": prefix,
        "micromamba": micromamba,
        "locks_dir": str(locks_dir),
        "envs_dir": str(envs_dir),
        "envs": envs,
        "pcgr_bin": f"{pcgr_env}/bin/pcgr",
        "run": [micromamba, "run", "--root-prefix", str(root), "--prefix", pcgr_env],
    }
