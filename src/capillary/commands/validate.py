"""`capillary validate`: check a sample tarball offline, or explain whether a key would be accepted.

The options of a tarball's TOML are checked for one release (`--release`, default: the
catalogue's current) of the program that reports the sample (`--engine`, default: by the kind in
its name, CPSR for `-normal`, PCGR otherwise), as the worker running that release checks them;
`--show-command` then prints, without running anything, the command line the worker would run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capillary.contract.layout import WorkerLayout
from capillary.contract.pcgr_options import (
    DEFAULT_RELEASE,
    PROGRAM_FOR_KIND,
    PROGRAMS,
    UnknownReleaseError,
    table,
    validate_options,
)
from capillary.contract.problems import Problem
from capillary.contract.samples import OUTPUT_PREFIX, SampleKey, SampleKeyError, parse_output_key
from capillary.contract.tarball import Validation, validate_tarball
from capillary.worker.engines import EngineInputError, EngineSetupError
from capillary.worker.engines.cpsr import CpsrEngine
from capillary.worker.engines.pcgr import PcgrConfig, PcgrEngine, copy_number_problem

if TYPE_CHECKING:
    from capillary.release.catalogue import Catalogue

# What --show-command cannot know, shown in its place: the worker's per-message workspace
# (`<workdir>/msg-<random>`, made when the message arrives), the consumer's uid:gid (container
# method), and the sample's name when the tarball is not named like one (`capillary submit`
# names it `{batch}-{uuid}-{kind}` at upload).
WORKSPACE_PLACEHOLDER = "msg-XXXXXXXX"
USER_PLACEHOLDER = "UID:GID"
SAMPLE_PLACEHOLDER = "batch-000000-somatic"
ENGINES: dict[str, type[PcgrEngine]] = {"pcgr": PcgrEngine, "cpsr": CpsrEngine}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a sample tarball (or a key) against the sample contract",
        description=(
            "Check a sample tarball offline: safe members, bgzipped VCFs with valid headers, contigs "
            "matching the declared assembly, and a TOML of options the release accepts (PCGR's, or "
            "CPSR's for a -normal sample). Exits 0 when the sample is valid, 1 when it is not (every "
            "problem is printed), 2 on usage errors."
        ),
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("path", nargs="?", type=Path, help="the sample tarball (.tar.gz)")
    target.add_argument("--key", help="an object key, e.g. inputs/batch1-0a1b2c-somatic.tar.gz")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--release",
        help="the PCGR release whose options the TOML is checked against (default: the catalogue's current)",
    )
    parser.add_argument(
        "--engine",
        choices=PROGRAMS,
        help=(
            "the program that reports the sample: cpsr (germline) or pcgr (somatic); default: by the "
            "kind in the tarball's name, cpsr for -normal, pcgr otherwise"
        ),
    )
    parser.add_argument(
        "--show-command",
        action="store_true",
        help="print the command line(s) the worker would run for this sample, without running anything",
    )
    parser.add_argument(
        "--method",
        choices=("conda", "container"),
        default=PcgrConfig().method,
        help="how the worker runs PCGR, for --show-command (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=PcgrConfig().threads,
        help="the worker's pcgr.threads, for --show-command (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.key is not None:
        if args.show_command:
            print("capillary validate: --show-command needs a tarball, not --key", file=sys.stderr)
            return 2
        return _explain_key(args.key, args.json)
    path: Path = args.path
    if path.is_dir():
        print(
            f"capillary validate: {path}: a folder, not a tarball (capillary pack makes one)", file=sys.stderr
        )
        return 2
    if not path.is_file():
        print(f"capillary validate: {path}: no such file", file=sys.stderr)
        return 2
    try:
        release = _release(args.release)
    except (UnknownReleaseError, ValueError) as exc:
        print(f"capillary validate: --release: {exc}", file=sys.stderr)
        return 2
    if args.threads < 1:
        print("capillary validate: --threads must be at least 1", file=sys.stderr)
        return 2
    program = args.engine or _program(path)
    label = table(release, program).label
    result = for_release(validate_tarball(path), release, program)
    commands: list[dict[str, Any]] = []
    if result.ok and args.show_command:
        try:
            commands = [{"engine": program, "argv": _engine_argv(path, result, release, program, args)}]
        except EngineInputError as exc:
            result.problems.extend(Problem("engine_input", problem) for problem in exc.problems)
            result.ok = False
        except EngineSetupError as exc:
            print(f"capillary validate: {exc}", file=sys.stderr)
            return 2
    if args.json:
        out: dict[str, Any] = {"path": str(path), "release": release, "engine": program, **result.as_dict()}
        if args.show_command and result.ok:
            out = {
                "release": release,
                "engine": program,
                "commands": commands,
                "placeholders": _placeholders(path, args),
            }
        print(json.dumps(out, indent=2))
    elif not result.ok:
        print(f"{path}: {len(result.problems)} problem(s) for {label}")
        for problem in result.problems:
            print(f"  - [{problem.code}] {problem}")
    elif args.show_command:
        for command in commands:
            print(shlex.join(command["argv"]))
    else:
        print(f"{path}: valid sample for {label} ({len(result.vcfs)} VCF, assembly {result.assembly})")
    return 0 if result.ok else 1


def _release(requested: str | None) -> str:
    """The release checked against: the one asked for, or the catalogue's current (the option
    tables' default where the catalogue cannot be read: a worker has no PyYAML)."""
    if requested is not None:
        return table(requested).release
    catalogue = _catalogue()
    return table(catalogue.current.version if catalogue else DEFAULT_RELEASE).release


def _catalogue() -> Catalogue | None:
    try:
        from capillary.release.catalogue import load_catalogue
    except ImportError:
        return None
    return load_catalogue()


def for_release(result: Validation, release: str, program: str = "pcgr") -> Validation:
    """The tarball's validation with its option problems judged for `program` at `release`: the
    tarball validator accepts options any program's release takes; the worker runs one."""
    if result.toml is None or any(p.code == "toml_invalid" for p in result.problems):
        return result
    problems = [p for p in result.problems if not p.code.startswith("option_")]
    problems += [
        Problem(p.code, p.message, f"{result.toml}: {p.member or 'options'}")
        for p in validate_options(result.options, release, cna=result.cna is not None, program=program)
    ]
    cna_problem = copy_number_problem(table(release, program), result.cna)
    if cna_problem is not None:
        problems.append(Problem("cna_unused", cna_problem, result.cna))
    result.problems = problems
    result.ok = not problems
    return result


def _sample_name(path: Path) -> str:
    """The sample's name as the worker knows it (from its key), when the file is named like one."""
    try:
        return SampleKey.parse(f"inputs/{path.name}").name
    except SampleKeyError:
        return SAMPLE_PLACEHOLDER


def _program(path: Path) -> str:
    """The program reporting a sample by the kind its name gives (PCGR when it names none)."""
    try:
        return PROGRAM_FOR_KIND[SampleKey.parse(f"inputs/{path.name}").kind]
    except SampleKeyError:
        return "pcgr"


def _engine_argv(
    path: Path, result: Validation, release: str, program: str, args: argparse.Namespace
) -> list[str]:
    """The argv the worker's pcgr or cpsr engine builds for this sample, in the worker's default
    layout (both read the `[pcgr]` install)."""
    catalogue = _catalogue()
    known = catalogue is not None and release in catalogue.versions
    image = catalogue.release(release).install.image_ref if catalogue and known else ""
    cfg = PcgrConfig(release=release, method=args.method, threads=args.threads, container_image=image)
    workspace = Path(WorkerLayout().workspace) / WORKSPACE_PLACEHOLDER
    root = workspace / "input"
    name = _sample_name(path)
    return ENGINES[program](cfg).preview(
        root,
        [root / vcf for vcf in result.vcfs],
        root / result.cna if result.cna else None,
        result.options,
        name,
        workspace / "out" / name,
        user=USER_PLACEHOLDER,
    )


def _placeholders(path: Path, args: argparse.Namespace) -> dict[str, str]:
    shown = {"workspace": str(Path(WorkerLayout().workspace) / WORKSPACE_PLACEHOLDER)}
    if args.method == "container":
        shown["user"] = USER_PLACEHOLDER
    if _sample_name(path) == SAMPLE_PLACEHOLDER:
        shown["sample"] = SAMPLE_PLACEHOLDER
    return shown


def _explain_key(key: str, as_json: bool) -> int:
    out: dict[str, Any] = {"key": key}
    try:
        if key.startswith(OUTPUT_PREFIX):
            sample, what = parse_output_key(key)
            out.update(accepted=True, role=what)
        else:
            sample = SampleKey.parse(key)
            out.update(accepted=True, role="input")
        out.update(
            batch=sample.batch,
            uuid=sample.uuid,
            kind=sample.kind,
            name=sample.name,
            input_key=sample.input_key,
            output_key=sample.output_key,
            error_key=sample.error_key,
            run_key=sample.run_key,
        )
    except SampleKeyError as exc:
        out.update(accepted=False, reason=exc.reason)
    if as_json:
        print(json.dumps(out, indent=2))
    elif out["accepted"]:
        print(
            f"{key}: accepted as {out['role']} (batch {out['batch']!r}, uuid {out['uuid']}, "
            f"kind {out['kind']}); output {out['output_key']}, error report {out['error_key']}, "
            f"run record {out['run_key']}"
        )
    else:
        print(f"{key}: rejected: {out['reason']}")
    return 0 if out["accepted"] else 1
