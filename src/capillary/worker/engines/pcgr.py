"""`pcgr`: the PCGR command for one sample, built from its TOML and the installed release's table.

The same code builds CPSR's command (`engines.cpsr`, for `normal` samples): CPSR is installed with
PCGR (same env or image, bundle and VEP cache) and reads the same `[pcgr]` section; every function
here takes the `program` whose table and executable it uses ("pcgr" by default).

Every command line comes from the release's option table (`capillary.contract.pcgr_options`,
written from PCGR's own source at that tag): its flags, its types (an integer as digits, a switch
as a bare flag), its ranges and cross-option rules. An option the release lacks, a value out of
its range or a broken rule is an EngineInputError naming the option and the rule, before anything
runs; a release without a table is an EngineSetupError. Paths and run-time switches are set here,
never by the sample. `vep_n_forks` and `vcfanno_n_proc` follow `pcgr.threads`, capped to the
release's range, unless the sample sets them.

Nothing a sample carries reaches a shell: the command is an argv list, the sample id and every
string option passed the safe vocabulary (`capillary.contract.vocabulary`) in the table's checks,
the member paths of the VCF and CNA file are checked again here, and every argument that is not
one of the engine's own paths is checked once more as the last step (`vocabulary.argument_problem`).

PCGR 2.x takes `--refdata_dir` (the data bundle) and `--vep_dir` (the VEP cache) separately; 1.4
takes one `--pcgr_dir` holding both (the table's `inputs` say which).

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

`plan()` is the pure part (no file system, nothing run): `capillary validate --show-command`
prints what it returns for the worker's default layout, so users see the argv the worker runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capillary.contract import vocabulary
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
from capillary.contract.pcgr_options import (
    DEFAULT_RELEASE,
    ReleaseTable,
    UnknownReleaseError,
    table,
    validate_options,
)
from capillary.contract.tarball import vcf_count_problem
from capillary.worker.engines import EngineCommand, EngineInputError, EngineSetupError

if TYPE_CHECKING:
    from capillary.contract.tarball import ExtractedSample

_SAMPLE_ID_MAX = 35
_SAMPLE_ID_MIN = 3
# Options the engine places itself, first; and the ones it derives from pcgr.threads.
_PLACED = ("genome_assembly", "sample_id")
_THREADED = ("vep_n_forks", "vcfanno_n_proc")
_METHODS = ("conda", "container")


@dataclass(frozen=True)
class PcgrConfig:
    """The `[pcgr]` section: how this engine finds and runs the installed PCGR release."""

    # A release with an option table; the default is the tables' (the catalogue's current).
    release: str = DEFAULT_RELEASE
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
    program: str = "pcgr",
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run `<program> <args>` (`pcgr` or `cpsr`) the configured way:
    the one shape the engine runs a sample with and the pcgr role smoke-checks an install with.

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
            program,
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
    return [str(prefix / "bin" / program), *args], env


def release_table(release: str, program: str = "pcgr") -> ReleaseTable:
    """The installed release's option table; a release without one is this worker's problem."""
    try:
        return table(release, program)
    except UnknownReleaseError as exc:
        raise EngineSetupError(f"pcgr.release: {exc}") from exc


def release_major(release: str) -> int:
    match = re.match(r"^v?(\d+)\.", release)
    if not match:
        raise EngineSetupError(f"pcgr.release {release!r} is not a version like 2.3.2")
    return int(match.group(1))


def default_sample_id(name: str) -> str:
    """A PCGR sample id from the sample's name: safe characters only, 3 to 35 of them (what every
    release takes), keeping the uuid and kind at the end (they make it unique)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-_SAMPLE_ID_MAX:].lstrip("_.-")
    # Every release wants at least 3 characters; a sample's key name always has more.
    return cleaned if len(cleaned) >= _SAMPLE_ID_MIN else f"sample-{cleaned}".rstrip("-")


def threaded_options(
    options: Mapping[str, Any], release: str, threads: int, program: str = "pcgr"
) -> dict[str, Any]:
    """The sample's options with the worker's parallelism where the sample sets none: `threads`
    for VEP's forks and vcfanno's processes, capped to the range the release accepts."""
    spec_table = release_table(release, program)
    merged = dict(options)
    for name in _THREADED:
        spec = spec_table.options.get(name)
        if spec is None or name in merged:
            continue
        low = int(spec.minimum) if spec.minimum is not None else 1
        high = int(spec.maximum) if spec.maximum is not None else threads
        merged[name] = max(low, min(threads, high))
    return merged


def option_args(
    options: Mapping[str, Any], release: str, *, cna: bool = False, program: str = "pcgr"
) -> list[str]:
    """The flags for the sample's options under `release`; raises EngineInputError naming each
    bad one. `cna`: the sample carries a copy-number file (some rules apply only then)."""
    spec_table = release_table(release, program)
    problems = [str(p) for p in validate_options(options, spec_table.release, cna=cna, program=program)]
    if problems:
        raise EngineInputError(problems)
    return spec_table.option_argv(options, skip=_PLACED)


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
    options: Mapping[str, Any],
    vcf: str,
    cna: str | None,
    output_dir: str,
    refdata_dir: str,
    vep_dir: str,
    sample_id: str,
    program: str = "pcgr",
) -> list[str]:
    """The program's arguments (without the executable) for one sample and release. The paths are
    the engine's own; everything else comes from the sample's options through the release's table
    and is checked against the safe vocabulary once more before it is returned."""
    spec_table = release_table(release, program)
    cna_problem = copy_number_problem(spec_table, cna)
    if cna_problem is not None:
        raise EngineInputError([cna_problem])
    extra = option_args(options, release, cna=cna is not None, program=program)
    sid = str(options.get("sample_id") or sample_id)
    id_problems = spec_table.options["sample_id"].problems(sid, spec_table.release, program)
    if id_problems:
        raise EngineInputError([f"sample id {problem.message}" for problem in id_problems])
    inputs = spec_table.inputs
    paths = [inputs["vcf"], vcf]
    if cna:
        paths += [inputs["cna"], cna]
    if "vep" in inputs:
        paths += [inputs["vep"], vep_dir]
    paths += [inputs["refdata"], refdata_dir, inputs["output"], output_dir]
    placed = [
        spec_table.options["genome_assembly"].flag,
        str(options["genome_assembly"]),
        spec_table.options["sample_id"].flag,
        sid,
    ]
    unsafe = [p for p in (vocabulary.argument_problem(a) for a in placed + extra) if p is not None]
    if unsafe:
        raise EngineInputError([f"refused on the command line: {problem}" for problem in unsafe])
    return paths + placed + extra


def copy_number_problem(spec_table: ReleaseTable, cna: object) -> str | None:
    """A copy-number file given to a program that takes none (CPSR: germline SNVs/InDels only)."""
    if cna is None or "cna" in spec_table.inputs:
        return None
    return (
        f"{spec_table.label} takes no copy-number file: a {spec_table.program} sample holds its VCF and "
        "TOML only (leave the .tsv out, or submit the sample as somatic for PCGR)"
    )


@dataclass(frozen=True)
class SamplePaths:
    """Where one sample's files are on the worker: the unpacked tarball (`root`, holding `vcf` and
    `cna`), the output directory, the writable cache and the assembly's reference data."""

    root: Path
    vcf: Path
    cna: Path | None
    outdir: Path
    cache: Path
    refdata: Path


def plan(
    cfg: PcgrConfig,
    options: Mapping[str, Any],
    paths: SamplePaths,
    sample_id: str,
    *,
    user: str,
    program: str = "pcgr",
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run `program` (PCGR or CPSR) on one sample, the configured
    way; pure (nothing is read from disk, nothing runs). `options` are the sample's, threads
    applied (`threaded_options`); `user` is the uid:gid a container runs as."""
    if cfg.method == "container":

        def inside(path: Path) -> str:
            return f"{CONTAINER_INPUT}/{path.relative_to(paths.root).as_posix()}"

        args = build_args(
            release=cfg.release,
            options=options,
            vcf=inside(paths.vcf),
            cna=inside(paths.cna) if paths.cna else None,
            output_dir=CONTAINER_OUTPUT,
            refdata_dir=CONTAINER_REFDATA,
            vep_dir=CONTAINER_VEP,
            sample_id=sample_id,
            program=program,
        )
        volumes = (
            f"{paths.root}:{CONTAINER_INPUT}:ro",
            f"{paths.refdata}:{CONTAINER_REFDATA}:ro",
            f"{cfg.vep_dir}:{CONTAINER_VEP}:ro",
            f"{paths.outdir}:{CONTAINER_OUTPUT}:rw",
            f"{paths.cache}:{CONTAINER_XDG_CACHE_HOME}:rw",
        )
        return invocation(cfg, args, user=user, cache=paths.cache, volumes=volumes, program=program)
    args = build_args(
        release=cfg.release,
        options=options,
        vcf=str(paths.vcf),
        cna=str(paths.cna) if paths.cna else None,
        output_dir=str(paths.outdir),
        refdata_dir=str(paths.refdata),
        vep_dir=str(cfg.vep_dir),
        sample_id=sample_id,
        program=program,
    )
    return invocation(cfg, args, user="", cache=paths.cache, program=program)


def member_paths_problems(root: Path, *files: Path | None) -> list[str]:
    """The sample's files as members of its tarball, checked against the safe vocabulary again:
    their paths go onto the command line."""
    problems = []
    for path in files:
        if path is None:
            continue
        try:
            member = path.relative_to(root).as_posix()
        except ValueError:
            problems.append(f"{vocabulary.shown(str(path))} is outside the unpacked sample")
            continue
        problem = vocabulary.member_problem(member) if member != "." else "names no file"
        if problem is not None:
            # member_problem's sentences name the member already when they are about its name.
            named = problem if problem.startswith("name ") else f"{vocabulary.shown(member)} {problem}"
            problems.append(f"member {named}")
    return problems


class PcgrEngine:
    """PCGR for one sample; `engines.cpsr` is this class with CPSR's `name` and `program`."""

    name = "pcgr"
    # Whose option table and executable: "pcgr" or "cpsr".
    program = "pcgr"

    def __init__(self, cfg: PcgrConfig) -> None:
        self.cfg = cfg

    def versions(self) -> dict[str, str]:
        return {
            "engine": self.name,
            "pcgr": self.cfg.release,
            "bundle": self.cfg.bundle_version,
            "method": self.cfg.method,
        }

    @staticmethod
    def _one_vcf(vcfs: Sequence[Path]) -> Path:
        problem = vcf_count_problem(len(vcfs))
        if problem is not None:
            raise EngineInputError([f"the tarball {problem.message}"])
        return vcfs[0]

    def command(self, sample: ExtractedSample, sample_id: str, outdir: Path) -> EngineCommand:
        argv, env, paths = self._build(
            sample.root, sample.vcfs, sample.cna, sample.options, sample_id, outdir, installed=True
        )
        outdir.mkdir(parents=True, exist_ok=True)
        paths.cache.mkdir(exist_ok=True)
        return EngineCommand(argv=argv, cwd=outdir.parent, env=env)

    def preview(
        self,
        root: Path,
        vcfs: Sequence[Path],
        cna: Path | None,
        options: Mapping[str, Any],
        sample_id: str,
        outdir: Path,
        *,
        user: str,
    ) -> list[str]:
        """The argv `command` builds for a sample unpacked at `root`, without this worker: the same
        checks, except the ones only a worker can answer (is the assembly's reference data here,
        is PCGR installed). `capillary validate --show-command` prints it."""
        argv, _, _ = self._build(root, vcfs, cna, options, sample_id, outdir, installed=False, user=user)
        return argv

    def _build(
        self,
        root: Path,
        vcfs: Sequence[Path],
        cna: Path | None,
        sample_options: Mapping[str, Any],
        sample_id: str,
        outdir: Path,
        *,
        installed: bool,
        user: str = "",
    ) -> tuple[list[str], dict[str, str], SamplePaths]:
        vcf = self._one_vcf(vcfs)
        spec_table = release_table(self.cfg.release, self.program)
        problems = member_paths_problems(root, vcf, cna)
        cna_problem = copy_number_problem(spec_table, cna)
        if cna_problem is not None:
            problems.append(cna_problem)
        if problems:
            raise EngineInputError(problems)
        # The worker's size decides parallelism unless the sample asks for something else.
        options = threaded_options(sample_options, self.cfg.release, self.cfg.threads, self.program)
        # Every option problem first (a missing or misspelt genome_assembly among them), then
        # whether this worker has the reference data of the assembly the sample declares.
        option_args(options, self.cfg.release, cna=cna is not None, program=self.program)
        assembly = str(options["genome_assembly"])
        if installed:
            refdata = select_refdata(self.cfg, assembly, sample_id)
            if self.cfg.method == "conda":
                self._check_conda()
        else:
            refdata = self.cfg.assembly_refdata_dir(assembly)
        paths = SamplePaths(
            root=root, vcf=vcf, cna=cna, outdir=outdir, cache=outdir.parent / SAMPLE_CACHE, refdata=refdata
        )
        argv, env = plan(
            self.cfg,
            options,
            paths,
            default_sample_id(sample_id),
            user=user or f"{os.getuid()}:{os.getgid()}",
            program=self.program,
        )
        return argv, env, paths

    def _check_conda(self) -> None:
        prefix = self.cfg.conda_env
        executable = prefix / "bin" / self.program
        if not os.access(executable, os.X_OK):
            raise EngineSetupError(
                f"pcgr.conda_prefix: {executable} is not an executable {self.program.upper()} install"
            )
        pcgrr = sibling_env(prefix, "pcgrr")
        if not pcgrr.is_dir():
            raise EngineSetupError(
                f"pcgr.conda_prefix: the pcgrr env must sit beside the pcgr env ({pcgrr} is missing)"
            )


ENGINE = PcgrEngine
