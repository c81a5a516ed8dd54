"""`pcgr`: the PCGR command for one sample, built from its TOML for the installed release.

The sample's options are checked against `capillary.contract.pcgr_options` before anything runs; an
unknown or invalid option, or one the installed release does not have, is an EngineInputError
naming it. Paths and run-time switches are set here, never by the sample.

PCGR 2.x takes `--refdata_dir` (the data bundle) and `--vep_dir` (the VEP cache) separately; 1.4
takes one `--pcgr_dir` holding both. Some options were renamed (`flag_v1` in pcgr_options).

A worker may hold bundles for several assemblies (`<pcgr.refdata_root>/<assembly>`): each sample
gets the bundle of its own `genome_assembly`. A sample asking for one this worker does not have is
an EngineInputError naming the sample, the assembly and the installed ones, before PCGR starts;
an assembly the configuration lists whose directory is missing is an EngineSetupError (the
worker, not the sample, is at fault). The VEP cache directory holds every assembly's cache.

Two ways to run it, both on `capillary.contract.layout` (the pcgr role installs the release there
and smoke-checks it through `invocation`, the same argv this engine runs):
- `conda`: the release's `pcgr` env (`pcgr.conda_prefix`, by default the role's
  `/opt/pcgr/<release>/envs/pcgr`), with the `pcgrr` env beside it (PCGR finds its R half as a
  sibling of `$CONDA_PREFIX`).
- `container`: the release's image through `pcgr.container_runtime`, as the worker's own uid, with
  the inputs and reference data read-only at the layout's mount points and `XDG_CACHE_HOME`
  pointing somewhere writable (the report renderer caches there, and a non-root user has no home
  in the image).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capillary.contract.layout import (
    CONTAINER_HOME,
    CONTAINER_INPUT,
    CONTAINER_OUTPUT,
    CONTAINER_REFDATA,
    CONTAINER_VEP,
    CONTAINER_XDG_CACHE_HOME,
    SAMPLE_CACHE,
    CondaLayout,
    WorkerLayout,
    sibling_env,
)
from capillary.contract.pcgr_options import OPTIONS, validate_options
from capillary.worker.engines import EngineCommand, EngineInputError, EngineSetupError

if TYPE_CHECKING:
    from capillary.contract.tarball import ExtractedSample

_SAMPLE_ID_MAX = 35
_METHODS = ("conda", "container")


@dataclass(frozen=True)
class PcgrConfig:
    """The `[pcgr]` section: how this engine finds and runs the installed PCGR release."""

    release: str = "2.3.0"
    bundle_version: str = ""
    # pcgr_refdata's layout: the active bundles as `<refdata_root>/<assembly>`, one per installed
    # assembly; a sample runs on the one its TOML's genome_assembly names.
    refdata_root: Path = Path(WorkerLayout().refdata_current)
    assemblies: tuple[str, ...] = ("grch38",)
    # The older per-assembly form (`…/current/grch38`): when set, it replaces the two above and
    # the worker serves that one assembly, named by the directory. Not to be combined with them.
    refdata_dir: Path | None = None
    # One VEP cache directory holds every assembly's cache (`homo_sapiens/<v>_GRCh38`, `…_GRCh37`);
    # PCGR picks by --genome_assembly.
    vep_dir: Path = Path(WorkerLayout().vep_current)
    # conda: the release's `pcgr` env (`conda_prefix`) with `pcgrr` as its sibling env.
    # container: the release's image run through `container_runtime`.
    method: str = "conda"
    # The `pcgr` env's prefix; unset, the pcgr role's layout for `release`.
    conda_prefix: Path | None = None
    container_image: str = ""
    container_runtime: str = "podman"
    threads: int = 2

    @property
    def installed_assemblies(self) -> tuple[str, ...]:
        """The assemblies this worker has reference data for."""
        return (self.refdata_dir.name,) if self.refdata_dir is not None else self.assemblies

    def assembly_refdata_dir(self, assembly: str) -> Path:
        """PCGR's `--refdata_dir` (1.4: `--pcgr_dir`) for `assembly`, installed or not."""
        root = self.refdata_dir.parent if self.refdata_dir is not None else self.refdata_root
        return root / assembly

    @property
    def conda_env(self) -> Path:
        """The `pcgr` env PCGR runs from (conda method): `conda_prefix`, or the role's layout."""
        if self.conda_prefix is not None:
            return self.conda_prefix
        return Path(CondaLayout().env(self.release, "pcgr"))


def invocation(
    cfg: PcgrConfig,
    args: Sequence[str],
    *,
    user: str,
    cache: Path,
    volumes: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run `pcgr <args>` the configured way: the one shape the
    engine runs a sample with and the pcgr role smoke-checks an install with.

    `user` (uid:gid) and `volumes` (`host:inside:mode`) apply to the container method, `cache`
    (the writable XDG_CACHE_HOME, HOME its parent) to the conda method; `environ` is the
    environment the command starts from (default: this process's).
    """
    if cfg.method not in _METHODS:
        raise EngineSetupError(f"pcgr.method {cfg.method!r} is not one of {', '.join(_METHODS)}")
    env = dict(os.environ if environ is None else environ)
    if cfg.method == "container":
        argv = [
            cfg.container_runtime,
            "run",
            "--rm",
            "--network=none",
            f"--user={user}",
            f"--env=XDG_CACHE_HOME={CONTAINER_XDG_CACHE_HOME}",
            f"--env=HOME={CONTAINER_HOME}",
            *(f"--volume={volume}" for volume in volumes),
            cfg.container_image,
            "pcgr",
            *args,
        ]
        return argv, env
    prefix = cfg.conda_env
    env.update(
        {
            "CONDA_PREFIX": str(prefix),
            "CONDA_DEFAULT_ENV": prefix.name,
            "PATH": f"{prefix / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            "XDG_CACHE_HOME": str(cache),
            "HOME": str(cache.parent),
        }
    )
    return [str(prefix / "bin" / "pcgr"), *args], env


def release_major(release: str) -> int:
    match = re.match(r"^v?(\d+)\.", release)
    if not match:
        raise EngineSetupError(f"pcgr.release {release!r} is not a version like 2.3.0")
    return int(match.group(1))


def default_sample_id(name: str) -> str:
    """A PCGR sample id from the sample's name: no whitespace, at most 35 characters, keeping the
    uuid and kind at the end (they make it unique)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return cleaned[-_SAMPLE_ID_MAX:].lstrip("_.-") or "sample"


def option_args(options: dict[str, Any], release: str) -> list[str]:
    """The flags for the sample's options under `release`; raises EngineInputError naming each bad one."""
    problems = [str(p) for p in validate_options(options)]
    v1 = release_major(release) < 2
    for name in options:
        spec = OPTIONS.get(name)
        if spec is not None and v1 and spec.flag_v1 is None:
            problems.append(f"option {name}: not available in PCGR {release} (the installed release)")
    if problems:
        raise EngineInputError(problems)
    argv: list[str] = []
    for name, value in options.items():
        if name in ("genome_assembly", "sample_id"):
            continue  # placed explicitly by build_args
        spec = OPTIONS[name]
        flag = spec.flag_v1 if v1 else spec.flag
        assert flag is not None
        if spec.type == "bool":
            if value:
                argv.append(flag)
        else:
            argv += [flag, str(value)]
    return argv


def select_refdata(cfg: PcgrConfig, assembly: str, sample_id: str) -> Path:
    """The reference data directory for a sample of `assembly`, checked before anything runs."""
    installed = cfg.installed_assemblies
    if assembly not in installed:
        raise EngineInputError(
            [
                f"sample {sample_id}: genome_assembly {assembly!r} is not installed on this worker "
                f"(reference data installed: {', '.join(installed)})"
            ]
        )
    refdata = cfg.assembly_refdata_dir(assembly)
    if not refdata.is_dir():
        raise EngineSetupError(
            f"pcgr reference data for {assembly}: {refdata} is missing although the configuration "
            f"lists {assembly} as installed"
        )
    return refdata


def build_args(
    *,
    release: str,
    options: dict[str, Any],
    vcf: str,
    cna: str | None,
    output_dir: str,
    refdata_dir: str,
    vep_dir: str,
    sample_id: str,
) -> list[str]:
    """PCGR's arguments (without the executable) for one sample and release."""
    extra = option_args(options, release)
    args = ["--input_vcf", vcf]
    if cna:
        args += ["--input_cna", cna]
    if release_major(release) >= 2:
        args += ["--vep_dir", vep_dir, "--refdata_dir", refdata_dir]
    else:
        args += ["--pcgr_dir", refdata_dir]
    args += [
        "--output_dir",
        output_dir,
        "--genome_assembly",
        str(options["genome_assembly"]),
        "--sample_id",
        str(options.get("sample_id") or sample_id),
    ]
    return args + extra


class PcgrEngine:
    name = "pcgr"

    def __init__(self, cfg: PcgrConfig) -> None:
        self.cfg = cfg

    def versions(self) -> dict[str, str]:
        return {
            "engine": "pcgr",
            "pcgr": self.cfg.release,
            "bundle": self.cfg.bundle_version,
            "method": self.cfg.method,
        }

    def _check_vcfs(self, sample: ExtractedSample) -> Path:
        if len(sample.vcfs) != 1:
            raise EngineInputError(
                [
                    "PCGR takes exactly one tumor VCF per sample; "
                    f"the tarball holds {len(sample.vcfs)} .vcf.gz files"
                ]
            )
        return sample.vcfs[0]

    def command(self, sample: ExtractedSample, sample_id: str, outdir: Path) -> EngineCommand:
        vcf = self._check_vcfs(sample)
        options = dict(sample.options)
        # The worker's size decides parallelism unless the sample asks for something else.
        options.setdefault("vep_n_forks", self.cfg.threads)
        options.setdefault("vcfanno_n_proc", min(self.cfg.threads, 15))
        # Every option problem first (a missing or misspelt genome_assembly among them), then
        # whether this worker has the reference data of the assembly the sample declares.
        option_args(options, self.cfg.release)
        refdata = select_refdata(self.cfg, str(options["genome_assembly"]), sample_id)
        sid = default_sample_id(sample_id)
        outdir.mkdir(parents=True, exist_ok=True)
        cache = outdir.parent / SAMPLE_CACHE
        cache.mkdir(exist_ok=True)
        if self.cfg.method == "container":
            return self._container(sample, vcf, options, sid, outdir, cache, refdata)
        return self._conda(sample, vcf, options, sid, outdir, cache, refdata)

    def _conda(
        self,
        sample: ExtractedSample,
        vcf: Path,
        options: dict[str, Any],
        sid: str,
        outdir: Path,
        cache: Path,
        refdata: Path,
    ) -> EngineCommand:
        prefix = self.cfg.conda_env
        args = build_args(
            release=self.cfg.release,
            options=options,
            vcf=str(vcf),
            cna=str(sample.cna) if sample.cna else None,
            output_dir=str(outdir),
            refdata_dir=str(refdata),
            vep_dir=str(self.cfg.vep_dir),
            sample_id=sid,
        )
        executable = prefix / "bin" / "pcgr"
        if not os.access(executable, os.X_OK):
            raise EngineSetupError(f"pcgr.conda_prefix: {executable} is not an executable PCGR install")
        pcgrr = sibling_env(prefix, "pcgrr")
        if not pcgrr.is_dir():
            raise EngineSetupError(
                f"pcgr.conda_prefix: the pcgrr env must sit beside the pcgr env ({pcgrr} is missing)"
            )
        argv, env = invocation(self.cfg, args, user="", cache=cache)
        return EngineCommand(argv=argv, cwd=outdir.parent, env=env)

    def _container(
        self,
        sample: ExtractedSample,
        vcf: Path,
        options: dict[str, Any],
        sid: str,
        outdir: Path,
        cache: Path,
        refdata: Path,
    ) -> EngineCommand:
        def inside(path: Path) -> str:
            return f"{CONTAINER_INPUT}/{path.relative_to(sample.root).as_posix()}"

        args = build_args(
            release=self.cfg.release,
            options=options,
            vcf=inside(vcf),
            cna=inside(sample.cna) if sample.cna else None,
            output_dir=CONTAINER_OUTPUT,
            refdata_dir=CONTAINER_REFDATA,
            vep_dir=CONTAINER_VEP,
            sample_id=sid,
        )
        argv, env = invocation(
            self.cfg,
            args,
            user=f"{os.getuid()}:{os.getgid()}",
            cache=cache,
            volumes=(
                f"{sample.root}:{CONTAINER_INPUT}:ro",
                f"{refdata}:{CONTAINER_REFDATA}:ro",
                f"{self.cfg.vep_dir}:{CONTAINER_VEP}:ro",
                f"{outdir}:{CONTAINER_OUTPUT}:rw",
                f"{cache}:{CONTAINER_XDG_CACHE_HOME}:rw",
            ),
        )
        return EngineCommand(argv=argv, cwd=outdir.parent, env=env)


ENGINE = PcgrEngine
