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

`build_key` is that key, worked out here the way `roles/bake/tasks/build.yml` does (the commit,
`-dirty-<hash of the sources>` for an uncommitted tree, the provisioning extra vars, the
catalogue's content, the Packer variables), so `make demo` can see that the release's image was
baked - and smoke-tested, which is what tagging it took - from exactly these inputs, and leave
bake.yml out. The bake role labels the image with it (`org.capillary.build-key`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capillary.local.artifacts import ArtifactServer, build_artifacts, make_test_catalogue
from capillary.local.playbook import REPO
from capillary.local.podman import podman
from capillary.release.catalogue import Release, load_catalogue

BAKE_ROLES = ("data_volume", "pcgr_refdata", "pcgr_consumer")
ARTIFACT_PORT = 47207
BUILD_KEY_LABEL = "org.capillary.build-key"
# What roles/bake/tasks/build.yml hashes for an uncommitted tree ("Hash the sources an image is
# built from"), the same shell so that the file order and the output match byte for byte.
_SOURCE_KEY_SCRIPT = (
    "set -o pipefail;"
    " dirty=$(git status --porcelain -- src roles playbooks packer catalogue pyproject.toml 2>/dev/null"
    " | head -1);"
    ' [ -z "$dirty" ] && exit 0;'
    " git ls-files -z --cached --others --exclude-standard --"
    " src roles playbooks packer/worker.pkr.hcl packer/inventory catalogue pyproject.toml"
    " | grep -zv '/molecule/' | sort -zu"
    ' | xargs -0 -r sh -c \'for f; do [ -f "$f" ] && sha256sum "$f"; done; true\' hash'
    " | sha256sum | cut -c1-12"
)


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


def source_commit(repo: Path = REPO) -> str:
    """The commit an image of this tree is labelled with: the short commit, plus
    `-dirty-<hash of the sources>` when the image's sources differ from it (bake.yml's rule)."""
    git = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    commit = git.stdout.strip() or "unknown"
    dirty = subprocess.run(
        ["bash", "-c", _SOURCE_KEY_SCRIPT], cwd=repo, capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"{commit}-dirty-{dirty}" if dirty else commit


def build_key(commit: str, provision_extra_vars: Mapping[str, Any], packer_vars: Mapping[str, Any]) -> str:
    """The key bake.yml labels an image with (`to_json(sort_keys=true) | hash('sha256')`, first 12):
    the commit, the provisioning extra vars but the catalogue's path, the catalogue's content (as
    the `file` lookup reads it: trailing whitespace stripped) and the Packer variables."""
    catalogue_path = provision_extra_vars.get("pcgr_refdata_catalogue") or ""
    inputs = {
        "commit": commit,
        "provision": {k: v for k, v in provision_extra_vars.items() if k != "pcgr_refdata_catalogue"},
        "catalogue": Path(catalogue_path).read_text().rstrip() if catalogue_path else "",
        "packer": dict(packer_vars),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class LocalImage:
    """A local image as `podman image inspect` sees it: its id and its build key label."""

    id: str
    build_key: str


def local_image(image: str) -> LocalImage | None:
    """The image `image` names, or None when there is none."""
    fields = podman(
        "image", "inspect", "--format", f'{{{{ .Id }}}} {{{{ index .Labels "{BUILD_KEY_LABEL}" }}}}', image,
        check=False,
    ).split()  # fmt: skip
    return LocalImage(fields[0], fields[1] if len(fields) > 1 else "") if fields else None


def _smoke_record() -> Path:
    """Where the local run notes the images it saw pass bake.yml's smoke test: beside the base
    image's cache (scripts/build-base-image.sh), as podman's image store is per machine too."""
    cache = os.environ.get("CAPILLARY_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "capillary"
    )
    return Path(cache) / "smoke-tested-images.json"


def smoke_tested(image: LocalImage) -> bool:
    """Whether this very image (id and build key) passed bake.yml's smoke test on this machine.

    The label alone does not say it: bake.yml tags an image it did not smoke-test when asked to
    (`capillary_bake_smoke: false`, as the bake tests do)."""
    try:
        record = json.loads(_smoke_record().read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get(image.id) == image.build_key


def record_smoke_tested(image: LocalImage) -> None:
    """Note that `image` passed the smoke test (bake.yml succeeded with it, smoke test on)."""
    path = _smoke_record()
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {}
    record = {**(record if isinstance(record, dict) else {}), image.id: image.build_key}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
