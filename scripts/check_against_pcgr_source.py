"""Run every PCGR and CPSR command line the engine builds through the release's own parser and checks.

The unit tests check each argv against a parser built from Capillary's option tables
(`tests/support/pcgr_facts.py`), a mirror of PCGR written by us. This maintainer's tool checks the
same argv against the real thing: it imports the `pcgr` package from a checkout the maintainer
supplies (PCGR cannot be downloaded in CI, and no PCGR code is copied into this repository) and runs
the program's entry point on each argv:

    git --git-dir=<bare clone of sigven/pcgr> archive v2.3.2 pcgr | tar -x -C /tmp/pcgrsrc/v2.3.2
    .venv/bin/python scripts/check_against_pcgr_source.py --source /tmp/pcgrsrc/v2.3.2 --release 2.3.2

How the real code is run, at every release (1.4.1 included: it has the same `pcgr/main.py` and
`pcgr/cpsr.py` layout as 2.x). PCGR's `main.cli()` and CPSR's `cpsr.main()` parse `sys.argv` and go
on to run the workflow in the same function, so the tool calls them as they are, with only the
steps after the argument checks replaced:

- `arg_checker.verify_input_files` / `verify_input_files_cpsr` and `define_output_files` (they
  look into the reference bundle, the VEP cache and the output directory: the install's business,
  not the sample's) return an empty dict;
- `main.run_pcgr` / `cpsr.run_cpsr` (the workflow) stops the call: reaching it is "accepted".

Everything before those runs unpatched: argparse, `verify_args` (2.x; 1.4.1: `check_args`) or
`verify_args_cpsr` (1.4.1: `check_args_cpsr`), and PCGR's `config.create_config` (its sex /
primary-site rule). CPSR 2.x calls `create_config` after the file steps; it runs too, after the
stubs. CPSR 2.x builds its `--version` string from the conda env it runs in (`CONDA_PREFIX`): the
tool points that at an empty scratch env, so the version reads "UNKNOWN" and nothing is run. The
third-party modules the CLI modules import but the parser and checks never call (pandas, numpy,
cyvcf2, pybedtools) are replaced by inert stand-ins when they are not installed.
A `SystemExit` is a refusal: code 2 is argparse's ("parse"), 1 is PCGR's `error_message` ("check");
any other exception is reported as a crash, a refusal too.

The argv are those of `tests.support.pcgr_facts.option_cases(table)` that Capillary's validator
accepts, built by `capillary.worker.engines.pcgr.build_args` (the worker's threads applied, as the
engine does), with real files for the paths the checks look at. Then the reverse: each value and
rule Capillary refuses (`refused_cases`) is appended to an accepted command line, and those the
real program accepts are listed: where Capillary is stricter. The safe vocabulary's refusals
(`option_value`: shell characters, a leading dash...) are stricter on purpose; a range, choice or
rule there is a table fact to re-read (the tables say in a comment where they are stricter on
purpose). Values refused only for their TOML type (`"1"` for an integer) have no command-line form
and are counted, not run; a non-finite or fractional number is run.

Exit status: 0 when every accepted argv passed, 1 when the real program refused one (a defect in
the tables), 2 when the source cannot be used.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import logging
import re
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from capillary.contract.pcgr_options import (
    OptionSpec,
    ReleaseTable,
    normalise_release,
    table,
    validate_options,
)
from capillary.worker.engines.pcgr import build_args, threaded_options
from tests.support.pcgr_facts import base_options, option_cases, refused_cases

# What the CLI modules import at the top and the parser and checks never use.
HEAVY_IMPORTS = ("pandas", "pandas.api", "pandas.api.types", "numpy", "cyvcf2", "pybedtools")
# The worker's parallelism when building argv (capped to each release's range, as the engine does).
THREADS = 64
# The steps after the argument checks that look at files (the install's, not the sample's).
FILE_STEPS = ("verify_input_files", "verify_input_files_cpsr", "define_output_files")
ENTRY = {"pcgr": ("main", "cli", "run_pcgr"), "cpsr": ("cpsr", "main", "run_cpsr")}
SAMPLE_ID = {"pcgr": "b1-0a1b2c-somatic", "cpsr": "b1-0a1b2c-normal"}


class _Inert(types.ModuleType):
    """A stand-in module: every attribute is an inert object."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _InertValue()


class _InertValue:
    def __call__(self, *args: Any, **kwargs: Any) -> _InertValue:
        return _InertValue()

    def __getattr__(self, name: str) -> _InertValue:
        return _InertValue()


class _WorkflowReachedError(Exception):
    """Not an error: the program got past its argument checks to the workflow."""


class SourceError(Exception):
    """The source tree is not one this tool can run."""


@dataclass(frozen=True)
class Verdict:
    """What the real program said: `stage` None (accepted), "parse", "check" or "crash"."""

    stage: str | None
    message: str = ""


@dataclass(frozen=True)
class Paths:
    """Files and directories the checks look for (they test existence only)."""

    vcf: str
    cna: str
    refdata: str
    vep: str
    output: str
    conda_prefix: str

    @classmethod
    def under(cls, root: Path) -> Paths:
        for name in ("s.vcf.gz", "s.vcf.gz.tbi", "s.cna.tsv"):
            (root / name).touch()
        for name in ("refdata", "vep", "envs/pcgr"):
            (root / name).mkdir(parents=True)
        return cls(
            vcf=str(root / "s.vcf.gz"),
            cna=str(root / "s.cna.tsv"),
            refdata=str(root / "refdata"),
            vep=str(root / "vep"),
            output=str(root / "out"),
            conda_prefix=str(root / "envs/pcgr"),
        )


class RealProgram:
    """One program (pcgr or cpsr) of the `pcgr` package imported from the source tree."""

    def __init__(self, program: str, package: Path) -> None:
        module_name, entry_name, run_name = ENTRY[program]
        self.program = program
        self.module = importlib.import_module(f"pcgr.{module_name}")
        self.arg_checker = importlib.import_module("pcgr.arg_checker")
        self.entry: Callable[[], Any] = getattr(self.module, entry_name)
        self.run_name = run_name
        if not hasattr(self.module, run_name):
            raise SourceError(
                f"{package}/{module_name}.py has no {run_name}(): a layout this tool cannot run"
            )

    def run(self, argv: list[str], paths: Paths) -> Verdict:
        """The program's verdict on `argv`, from its own entry point."""
        _drop_captured_handlers()
        captured = io.StringIO()
        stubs: list[Any] = [
            mock.patch.object(self.arg_checker, name, lambda *args, **kwargs: {})
            for name in FILE_STEPS
            if hasattr(self.arg_checker, name)
        ]

        def reached(*args: Any, **kwargs: Any) -> None:
            raise _WorkflowReachedError

        with contextlib.ExitStack() as stack:
            for stub in stubs:
                stack.enter_context(stub)
            stack.enter_context(mock.patch.object(self.module, self.run_name, reached))
            stack.enter_context(mock.patch.object(sys, "argv", [self.program, *argv]))
            stack.enter_context(mock.patch.dict("os.environ", {"CONDA_PREFIX": paths.conda_prefix}))
            stack.enter_context(contextlib.redirect_stdout(captured))
            stack.enter_context(contextlib.redirect_stderr(captured))
            try:
                self.entry()
            except _WorkflowReachedError:
                return Verdict(None)
            except SystemExit as exc:
                stage = "parse" if exc.code == 2 else "check"
                return Verdict(stage, _last_error(captured.getvalue()))
            except Exception as exc:  # the real program would die here too
                return Verdict("crash", f"{type(exc).__name__}: {exc}")
        return Verdict("crash", f"{self.program} returned without reaching {self.run_name}()")


def _drop_captured_handlers() -> None:
    """PCGR's getlogger() binds a handler to the sys.stdout of its first call: drop those bound to
    an earlier run's capture, so each run's messages land in its own."""
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            for handler in list(logger.handlers):
                if isinstance(handler, logging.StreamHandler) and isinstance(handler.stream, io.StringIO):
                    logger.removeHandler(handler)


def _last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines()]
    errors = [line.split(" - ERROR - ", 1)[1] for line in lines if " - ERROR - " in line]
    errors = [line for line in errors if line] or [line for line in lines if "error:" in line]
    return errors[-1] if errors else (lines[-1] if lines else "")


def load_source(source: Path, release: str) -> Path:
    """Put `source` (the directory holding `pcgr/`) first on the import path; the release it holds."""
    package = source / "pcgr"
    version_file = package / "_version.py"
    if not version_file.is_file():
        raise SourceError(f"{source}: no pcgr/_version.py (give the directory that holds pcgr/)")
    found = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", version_file.read_text())
    version = found.group(1) if found else "?"
    if version != release:
        raise SourceError(f"{source} holds PCGR {version}, not {release}: extract the tag v{release}")
    if "pcgr" in sys.modules:
        raise SourceError("a pcgr package is imported already: run one source per invocation")
    missing = {name for name in HEAVY_IMPORTS if "." not in name and importlib.util.find_spec(name) is None}
    for name in HEAVY_IMPORTS:
        if name.split(".")[0] in missing:
            sys.modules[name] = _Inert(name)
    sys.path.insert(0, str(source))
    spec = importlib.util.find_spec("pcgr")
    if spec is None or spec.origin is None or Path(spec.origin).parent.resolve() != package.resolve():
        raise SourceError(f"pcgr would not be imported from {package}")
    return package


# -- the command lines --------------------------------------------------------------------------------


def engine_argv(spec_table: ReleaseTable, options: dict[str, Any], paths: Paths, cna: bool) -> list[str]:
    return build_args(
        release=spec_table.release,
        options=options,
        vcf=paths.vcf,
        cna=paths.cna if cna else None,
        output_dir=paths.output,
        refdata_dir=paths.refdata,
        vep_dir=paths.vep,
        sample_id=SAMPLE_ID[spec_table.program],
        program=spec_table.program,
    )


def accepted_argv(spec_table: ReleaseTable, paths: Paths) -> Iterator[tuple[str, list[str]]]:
    """Each option case Capillary accepts, as the engine's argv."""
    for case in option_cases(spec_table):
        options = threaded_options(case.options, spec_table.release, THREADS, program=spec_table.program)
        if validate_options(options, spec_table.release, cna=case.cna, program=spec_table.program):
            continue
        yield case.label, engine_argv(spec_table, options, paths, case.cna)


@dataclass(frozen=True)
class Refused:
    label: str
    codes: tuple[str, ...]
    reason: str
    argv: list[str]


def refused_argv(spec_table: ReleaseTable, paths: Paths) -> tuple[list[Refused], int]:
    """Each value and rule Capillary refuses, appended to an accepted argv (argparse keeps the last
    of a repeated flag), with a CNA file where the program takes one (PCGR checks its CNA options
    only then); and how many values have no command-line form (a TOML type refused: `"1"` for an
    integer, `true` for a number: on the command line both are just text)."""
    required = base_options(spec_table)
    base = threaded_options(required, spec_table.release, THREADS, program=spec_table.program)
    cna = "cna" in spec_table.inputs
    refused: list[Refused] = []
    no_form = 0
    for case, name in refused_cases(spec_table, set()):
        if name and name not in spec_table.options:
            continue
        problems = validate_options(case.options, spec_table.release, cna=cna, program=spec_table.program)
        codes = tuple(dict.fromkeys(p.code for p in problems))
        if name:
            spec = spec_table.options[name]
            text = _argv_form(spec, case.options[name])
            if text is None:
                no_form += 1
                continue
            extra = [spec.flag, text]
        else:
            extra = spec_table.option_argv({k: v for k, v in case.options.items() if required.get(k) != v})
        argv = engine_argv(spec_table, base, paths, cna) + extra
        reason = str(problems[0]) if problems else ""
        refused.append(Refused(case.label, codes, reason, argv))
    return refused, no_form


def _argv_form(spec: OptionSpec, value: Any) -> str | None:
    """`value` as a command line would carry it, or None when the command line cannot tell it from
    a valid value (a TOML type only: a string for a number, a number for a string, a boolean)."""
    if isinstance(value, bool) or spec.type == "bool" or isinstance(value, str) != (spec.type == "str"):
        return None
    return _text(value)


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def tail(spec_table: ReleaseTable, argv: list[str]) -> str:
    """The argv from the assembly on (the paths before it are this tool's)."""
    flag = spec_table.options["genome_assembly"].flag
    return " ".join(argv[argv.index(flag) :] if flag in argv else argv)


# -- the report -------------------------------------------------------------------------------------------


def check(program: str, release: str, package: Path, paths: Paths) -> bool:
    """Print the program's results at `release`; True when every accepted argv passed."""
    spec_table = table(release, program)
    real = RealProgram(program, package)
    name = program.upper()
    passed = 0
    failed: list[tuple[str, list[str], Verdict]] = []
    for label, argv in accepted_argv(spec_table, paths):
        verdict = real.run(argv, paths)
        if verdict.stage is None:
            passed += 1
        else:
            failed.append((label, argv, verdict))
    print(f"== {name} {release}")
    print(f"{passed} accepted argv passed {name}'s own parser and checks, {len(failed)} did not")
    for label, argv, verdict in failed:
        print(f"  REFUSED ({verdict.stage}) {label}: {tail(spec_table, argv)}")
        print(f"    {verdict.message}")
    refused, no_form = refused_argv(spec_table, paths)
    looser = [r for r in refused if real.run(r.argv, paths).stage is None]
    vocabulary = [r for r in looser if "option_value" in r.codes]
    non_finite = [r for r in looser if r not in vocabulary and "option_type" in r.codes]
    facts = [r for r in looser if r not in vocabulary and r not in non_finite]
    print(
        f"Capillary refuses, {name} accepts: {len(looser)} of {len(refused)} refused values and rules "
        f"({len(vocabulary)} by the safe vocabulary, {len(non_finite)} as non-finite numbers, {len(facts)} "
        f"by range, choice, length or rule; {no_form} more refused for a TOML type the command line "
        "cannot show, not run)"
    )
    for r in facts:
        print(f"  {r.label} [{', '.join(r.codes)}]: {r.reason}")
    for title, group in (("safe vocabulary", vocabulary), ("non-finite", non_finite)):
        if group:
            print(f"  {title}: " + ", ".join(r.label for r in group))
    return not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, required=True, help="directory holding pcgr/ at the tag")
    parser.add_argument("--release", required=True, help="the option table's release, e.g. 2.3.2")
    parser.add_argument("--program", choices=("pcgr", "cpsr", "both"), default="both")
    args = parser.parse_args(argv)
    release = normalise_release(args.release)
    programs = ("pcgr", "cpsr") if args.program == "both" else (args.program,)
    try:
        package = load_source(args.source, release)
        with tempfile.TemporaryDirectory(prefix="pcgr-argv-") as scratch:
            paths = Paths.under(Path(scratch))
            results = [check(program, release, package, paths) for program in programs]
    except SourceError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
