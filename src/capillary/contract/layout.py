"""The worker's filesystem and process contract: where things live on a worker, and what its
exit codes mean. Roles (through the `capillary.pcgr.worker_layout` filter), the daemon, the
engines, the image gate and the local run read these; nothing restates them.

Under the data root (the data volume's mountpoint, `DATA_ROOT` unless a deployment moves it):

    refdata/<bundle>/<assembly>/data/<assembly>/.PCGR_BUNDLE_VERSION   (PCGR's --refdata_dir)
    refdata/current -> <bundle>                                         (pcgr_refdata moves it)
    vep/<version>/homo_sapiens/<version>_<GRCh38|GRCh37>/               (PCGR's --vep_dir)
    vep/current -> <version>
    work/<sample>/                                                      (the consumer's workspace)
    .downloads/<file>.part                                              (resumable transfers)

Every installed artifact directory carries `ARTIFACT_STAMP` (what was fetched, its sha256): the
refdata tool's commit point; and `MANIFEST_NAME` (every file it unpacked, with size and sha256).
The image gate trusts a tree as public reference data only when its stamp names a catalogue
artifact at that artifact's place and every file under it matches the manifest.

PCGR itself, conda method (PCGR 2.x finds its R half as `dirname($CONDA_PREFIX)/pcgrr`, so the
two environments are siblings under one versioned prefix):

    /opt/pcgr/bin/micromamba
    /opt/pcgr/<version>/locks/{pcgr,pcgrr}-linux-64.lock
    /opt/pcgr/<version>/envs/pcgr     (python + VEP workflow; `pcgr` lives in its bin/)
    /opt/pcgr/<version>/envs/pcgrr    (R + quarto reporting)

Container method: the release's image, with the sample, the bundle, the VEP cache and the output
directory mounted at the `CONTAINER_*` points, `XDG_CACHE_HOME` and `HOME` inside it writable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from typing import Any, TypeVar

from capillary.contract.assemblies import ASSEMBLIES

_P = TypeVar("_P", bound=PurePath)

# --- exit codes of `capillary consume` (the unit's SuccessExitStatus / ExecStopPost read them) ---
EXIT_OK = 0
# Idle for idle_minutes with nothing in flight: the unit powers the worker off.
EXIT_IDLE = 75
# The configuration cannot be used (EX_CONFIG): systemd must not restart it in a loop.
EXIT_CONFIG = 78

# --- the data volume ------------------------------------------------------------------------------
# The one place this path is written in Python; data_volume's `data_volume_mountpoint` is the one
# Ansible default holding it (a unit test keeps the two equal and counts the copies).
DATA_ROOT = "/srv/capillary"
# The stamp pcgr_refdata writes atop every artifact directory it installed and verified.
ARTIFACT_STAMP = ".capillary-artifact.json"
# Beside the stamp: what the artifact unpacked to, written once at install time by pcgr_refdata
# (capillary-refdata's finalize) and verified file by file by the image gate, so a stamp alone
# (a JSON anyone can write) never makes a tree reference data. JSON, one object:
#   {"format": MANIFEST_FORMAT, "artifact": <the stamp's filename>, "sha256": <the stamp's sha256>,
#    "files": [[<path relative to the tree>, <size in bytes>, <sha256 hex>], ...],   (sorted by path)
#    "links": [[<path relative to the tree>, <link target>], ...]}
# The stamp and the manifest themselves are not listed; directories are implied by the paths.
MANIFEST_NAME = ".capillary-manifest.json"
MANIFEST_FORMAT = 1
# The name of the link to the active bundle (under refdata/) and VEP cache (under vep/).
CURRENT = "current"
# Inside one sample's workspace: where PCGR's report renderer caches (XDG_CACHE_HOME, conda method).
SAMPLE_CACHE = ".cache"

# --- the consumer's run-time state ----------------------------------------------------------------
STATE_FILE = "/run/capillary/state.json"

# --- PCGR, conda method ---------------------------------------------------------------------------
CONDA_PREFIX = "/opt/pcgr"
CONDA_ENVS = ("pcgr", "pcgrr")

# --- PCGR, container method: the mount points and environment inside the container ------------
CONTAINER_INPUT = "/mnt/input"
CONTAINER_OUTPUT = "/mnt/output"
CONTAINER_REFDATA = "/mnt/refdata"
CONTAINER_VEP = "/mnt/vep"
# Paths inside the container (a non-root user has no home in the image), not on the worker.
CONTAINER_HOME = "/tmp"  # noqa: S108
CONTAINER_XDG_CACHE_HOME = "/tmp/.cache"  # noqa: S108

_DATA_ROOT_PATH = PurePosixPath(DATA_ROOT)
_CONDA_PREFIX_PATH = PurePosixPath(CONDA_PREFIX)


@dataclass(frozen=True)
class WorkerLayout:
    """The paths under one data root (`WorkerLayout()` is the default root's)."""

    root: PurePosixPath = _DATA_ROOT_PATH

    def __post_init__(self) -> None:
        root = PurePosixPath(self.root)
        if not root.is_absolute():
            raise ValueError(f"data root {str(self.root)!r}: expected an absolute path")
        object.__setattr__(self, "root", root)

    @property
    def refdata(self) -> PurePosixPath:
        """The directory holding one `<bundle>` directory per installed bundle, and `current`."""
        return self.root / "refdata"

    @property
    def refdata_current(self) -> PurePosixPath:
        """The link to the active bundle: `<link>/<assembly>` is PCGR's `--refdata_dir`."""
        return self.refdata / CURRENT

    def bundle_dir(self, bundle_version: str, assembly: str) -> PurePosixPath:
        return self.refdata / bundle_version / assembly

    @property
    def vep(self) -> PurePosixPath:
        """The directory holding one `<version>` directory per installed VEP cache, and `current`."""
        return self.root / "vep"

    @property
    def vep_current(self) -> PurePosixPath:
        """The link to the active VEP cache: PCGR's `--vep_dir` (every assembly's cache inside)."""
        return self.vep / CURRENT

    def vep_dir(self, vep_version: int | str) -> PurePosixPath:
        return self.vep / str(vep_version)

    @property
    def workspace(self) -> PurePosixPath:
        """The consumer's workspace: one directory per sample in flight, empty in an image."""
        return self.root / "work"

    @property
    def downloads(self) -> PurePosixPath:
        """Where resumable transfers keep their part files."""
        return self.root / ".downloads"

    def part_file(self, filename: str) -> PurePosixPath:
        return self.downloads / f"{filename}.part"

    def as_dict(self) -> dict[str, Any]:
        """Everything the roles need, as strings (the `capillary.pcgr.worker_layout` filter)."""
        return {
            "root": str(self.root),
            # `refdata/<bundle>/<assembly>`: the assemblies a worker's tree can hold.
            "assemblies": list(ASSEMBLIES),
            "refdata": str(self.refdata),
            "refdata_current": str(self.refdata_current),
            "vep": str(self.vep),
            "vep_current": str(self.vep_current),
            "workspace": str(self.workspace),
            "downloads": str(self.downloads),
            "artifact_stamp": ARTIFACT_STAMP,
            "artifact_manifest": MANIFEST_NAME,
            "state_file": STATE_FILE,
            "conda_prefix": CONDA_PREFIX,
            "container": {
                "input": CONTAINER_INPUT,
                "output": CONTAINER_OUTPUT,
                "refdata": CONTAINER_REFDATA,
                "vep": CONTAINER_VEP,
                "home": CONTAINER_HOME,
                "xdg_cache_home": CONTAINER_XDG_CACHE_HOME,
            },
        }


@dataclass(frozen=True)
class CondaLayout:
    """Where the pcgr role installs a release with micromamba, and where the engine runs it from."""

    prefix: PurePosixPath = _CONDA_PREFIX_PATH

    def __post_init__(self) -> None:
        prefix = PurePosixPath(self.prefix)
        if not prefix.is_absolute():
            raise ValueError(f"conda prefix {str(self.prefix)!r}: expected an absolute path")
        object.__setattr__(self, "prefix", prefix)

    @property
    def micromamba(self) -> PurePosixPath:
        return self.prefix / "bin" / "micromamba"

    def envs_dir(self, version: str) -> PurePosixPath:
        return self.prefix / version / "envs"

    def locks_dir(self, version: str) -> PurePosixPath:
        return self.prefix / version / "locks"

    def env(self, version: str, name: str = "pcgr") -> PurePosixPath:
        """An environment's prefix (`$CONDA_PREFIX` when it runs): `<prefix>/<version>/envs/<name>`."""
        if name not in CONDA_ENVS:
            raise ValueError(f"conda env {name!r}: expected one of {', '.join(CONDA_ENVS)}")
        return self.envs_dir(version) / name

    def as_dict(self, version: str) -> dict[str, Any]:
        return {
            "prefix": str(self.prefix),
            "micromamba": str(self.micromamba),
            "envs_dir": str(self.envs_dir(version)),
            "locks_dir": str(self.locks_dir(version)),
            "envs": {name: str(self.env(version, name)) for name in CONDA_ENVS},
        }


def sibling_env(env: _P, name: str) -> _P:
    """The environment `name` beside `env` (PCGR looks for `pcgrr` as `dirname($CONDA_PREFIX)/pcgrr`)."""
    return env.parent / name
