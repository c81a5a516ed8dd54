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

Two ways to run it:
- `conda`: the release's `pcgr` env at `pcgr.conda_prefix`, with the `pcgrr` env beside it (PCGR
  finds its R half as a sibling of `$CONDA_PREFIX`).
- `container`: the release's image through `pcgr.container_runtime`, as the worker's own uid, with
  the inputs and reference data read-only and `XDG_CACHE_HOME` pointing somewhere writable (the
  report renderer caches there, and a non-root user has no home in the image).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capillary.contract.pcgr_options import OPTIONS, validate_options
from capillary.worker.engines import EngineCommand, EngineInputError, EngineSetupError

if TYPE_CHECKING:
    from capillary.contract.tarball import ExtractedSample
    from capillary.worker.config import ConsumerConfig, PcgrConfig

_SAMPLE_ID_MAX = 35
_CONTAINER_INPUT = "/mnt/input"
_CONTAINER_OUTPUT = "/mnt/output"
_CONTAINER_REFDATA = "/mnt/refdata"
_CONTAINER_VEP = "/mnt/vep"


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

    def __init__(self, cfg: ConsumerConfig) -> None:
        self.cfg: PcgrConfig = cfg.pcgr

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
        cache = outdir.parent / ".cache"
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
        prefix = self.cfg.conda_prefix
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
        if not (prefix.parent / "pcgrr").is_dir():
            raise EngineSetupError(
                "pcgr.conda_prefix: the pcgrr env must sit beside the pcgr env "
                f"({prefix.parent / 'pcgrr'} is missing)"
            )
        env = dict(os.environ)
        env.update(
            {
                "CONDA_PREFIX": str(prefix),
                "CONDA_DEFAULT_ENV": prefix.name,
                "PATH": f"{prefix / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
                "XDG_CACHE_HOME": str(cache),
                "HOME": str(cache.parent),
            }
        )
        return EngineCommand(argv=[str(executable), *args], cwd=outdir.parent, env=env)

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
            return f"{_CONTAINER_INPUT}/{path.relative_to(sample.root).as_posix()}"

        args = build_args(
            release=self.cfg.release,
            options=options,
            vcf=inside(vcf),
            cna=inside(sample.cna) if sample.cna else None,
            output_dir=_CONTAINER_OUTPUT,
            refdata_dir=_CONTAINER_REFDATA,
            vep_dir=_CONTAINER_VEP,
            sample_id=sid,
        )
        argv = [
            self.cfg.container_runtime,
            "run",
            "--rm",
            "--network=none",
            f"--user={os.getuid()}:{os.getgid()}",
            "--env=XDG_CACHE_HOME=/tmp/.cache",
            "--env=HOME=/tmp",
            f"--volume={sample.root}:{_CONTAINER_INPUT}:ro",
            f"--volume={refdata}:{_CONTAINER_REFDATA}:ro",
            f"--volume={self.cfg.vep_dir}:{_CONTAINER_VEP}:ro",
            f"--volume={outdir}:{_CONTAINER_OUTPUT}:rw",
            f"--volume={cache}:/tmp/.cache:rw",
            self.cfg.container_image,
            "pcgr",
            *args,
        ]
        return EngineCommand(argv=argv, cwd=outdir.parent, env=dict(os.environ))


ENGINE = PcgrEngine
