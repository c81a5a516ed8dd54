"""What the local bake provisions, for `tests/integration/test_bake.py` and `bench/bench_bake.py`.

The local source bakes the roles that can run inside the build container, with the reference
data fetched from a local artifact server (small artifacts with the real names and layout):

- `data_volume`: the build container has no block device, and no volume is configured (no
  `data_volume_ebs_volume_id`, no `data_volume_device`), so the role runs in its directory-only
  mode: it finds no device and only creates the mountpoint (the data root, `contract.layout`);
- `pcgr_refdata`: the release's bundle and VEP cache from an `ArtifactServer` on the host's
  loopback, through a test catalogue (`pcgr_refdata_catalogue`: the lookup runs on the
  controller, so a controller path is right). The build container joins the host network
  (Packer variable `local_network = "host"`): on podman's default bridge its 127.0.0.1 is its own;
- `pcgr_consumer`: the daemon and its unit, enabled and never started.

`pcgr` is left out: its container method would run podman nested inside the build container,
which needs a privileged build container and a nesting configuration (crun without cgroups, vfs)
that must not end up in a worker image; the role's Molecule scenario runs exactly that on a
booted container instead. Its conda method needs the conda channels on the network.

The server prefers a fixed port: the catalogue (URLs, sizes, sha256) is part of what bake.yml
keys a cached image by, and the artifacts are reproducible, so the same port means the same key
and a re-run reuses the image. If the port is taken another one is used; only the cache is lost.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capillary.local.artifacts import ArtifactServer, build_artifacts, make_test_catalogue
from capillary.release.catalogue import Release, load_catalogue

BAKE_ROLES = ("data_volume", "pcgr_refdata", "pcgr_consumer")
ARTIFACT_PORT = 47207


@dataclass(frozen=True)
class LocalBake:
    release: Release
    server: ArtifactServer
    catalogue: Path
    # capillary_bake_provision_extra_vars for bake.yml (provision_extra_vars, as JSON, for Packer)
    provision_extra_vars: dict[str, Any]
    # capillary_bake_packer_vars for bake.yml (merged into the var file for Packer)
    packer_vars: dict[str, str]

    def packer_var_file(self, path: Path, **variables: str) -> Path:
        """A Packer var file for `packer build` without bake.yml (the bench)."""
        content = {**self.packer_vars, "provision_extra_vars": json.dumps(self.provision_extra_vars)}
        path.write_text(json.dumps({**content, **variables}))
        return path


def _serve(root: Path) -> ArtifactServer:
    try:
        return ArtifactServer(root, port=ARTIFACT_PORT).start()
    except OSError:
        return ArtifactServer(root).start()


@contextlib.contextmanager
def local_bake(workdir: Path, version: str) -> Iterator[LocalBake]:
    """Serve `version`'s reference artifacts and yield what bake.yml (or Packer) needs to bake them."""
    release = load_catalogue().release(version)
    artifacts = workdir / "artifacts"
    build_artifacts(artifacts, release, ("grch38",))
    server = _serve(artifacts)
    try:
        catalogue = make_test_catalogue(
            workdir / "catalogue.yml", server.base_url, artifacts, versions=(version,), current=version
        )
        yield LocalBake(
            release=release,
            server=server,
            catalogue=catalogue,
            provision_extra_vars={
                "capillary_provision_roles": list(BAKE_ROLES),
                "data_volume_ebs_volume_id": "",
                "data_volume_device": "",
                "pcgr_refdata_catalogue": str(catalogue),
                "pcgr_refdata_assemblies": ["grch38"],
            },
            packer_vars={"local_network": "host"},
        )
    finally:
        server.stop()
