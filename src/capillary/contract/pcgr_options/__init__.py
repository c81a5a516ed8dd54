"""The sample TOML's options: what each PCGR and CPSR release accepts, as facts read from its source.

The TOML is flat; each key is an option name without the leading `--`:

    genome_assembly = "grch38"
    assay = "WGS"
    tumor_site = 9
    tumor_purity = 0.6
    estimate_tmb = true

One table per program and release of the catalogue (`pcgr_2_3_2`, `pcgr_2_2_5`, `pcgr_1_4_1`;
`cpsr_2_3_2`, `cpsr_2_2_5`, `cpsr_1_4_1`), each written from the program's CLI (`main.py`,
`cpsr.py`), `arg_checker.py`, `config.py` and `pcgr_vars.py` at that tag (the module says which
files); `spec` holds the shape they are written in and no fact, `rules` the kinds of cross-option
rule. No PCGR code is copied: the tables are Capillary's. CPSR, the germline reporter for
`normal` samples, ships in the same package at every catalogue release (its module says where),
so every lookup takes a `program` ("pcgr" by default) and works the same way for both.

An option name is Capillary's and means the same in every release; the table gives the release's
own flag for it (`effective_target_size_mb` is PCGR 1.4's `--target_size_mb`). An option the
release lacks is refused with a reason naming the option and the release; paths, run-time
switches and secrets (`input_vcf`, `--force_overwrite`, `--oncokb_api_token`...) are the engine's,
never a sample's. Boolean options are switches: `true` passes the flag, `false` omits it.

`validate_options(mapping, release, program=...)` checks for one release of one program; without a
release, a sample is valid when some release of the program accepts it, and the problems shown are
the default release's. With `program=None` a sample is valid when some release of either program
accepts it, and the problems shown are those of the program it comes closest to (the tarball
validator, which knows neither where the sample will run nor which engine the deployment gives
its kind, uses that; the worker's engine checks strictly).
`DEFAULT_RELEASE` is the catalogue's current release (a unit test keeps the two equal).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from capillary.contract import vocabulary
from capillary.contract.pcgr_options import (
    cpsr_1_4_1,
    cpsr_2_2_5,
    cpsr_2_3_2,
    pcgr_1_4_1,
    pcgr_2_2_5,
    pcgr_2_3_2,
)
from capillary.contract.pcgr_options.spec import NO_TAG, OptionSpec, ReleaseTable, Rule
from capillary.contract.problems import Problem

__all__ = [
    "DEFAULT_RELEASE",
    "NO_TAG",
    "OPTIONS",
    "PCGR_RELEASES",
    "PROGRAMS",
    "PROGRAM_FOR_KIND",
    "TABLES",
    "OptionSpec",
    "Problem",
    "ReleaseTable",
    "Rule",
    "UnknownReleaseError",
    "normalise_release",
    "releases",
    "releases_with",
    "table",
    "validate_option",
    "validate_options",
    "with_defaults",
]

TABLES: dict[tuple[str, str], ReleaseTable] = {
    (t.program, t.release): t
    for t in (
        pcgr_2_3_2.TABLE,
        pcgr_2_2_5.TABLE,
        pcgr_1_4_1.TABLE,
        cpsr_2_3_2.TABLE,
        cpsr_2_2_5.TABLE,
        cpsr_1_4_1.TABLE,
    )
}
PROGRAMS: tuple[str, ...] = tuple(dict.fromkeys(program for program, _ in TABLES))
# The program that reports each kind of sample where a deployment runs PCGR for real (its
# consumer's engine_normal = "cpsr"): germline samples get CPSR's report, somatic ones PCGR's.
PROGRAM_FOR_KIND = {"somatic": "pcgr", "normal": "cpsr"}
DEFAULT_RELEASE = "2.3.2"


def releases(program: str = "pcgr") -> tuple[str, ...]:
    """The releases with a table for `program`, newest first."""
    return tuple(release for p, release in TABLES if p == program)


PCGR_RELEASES: tuple[str, ...] = releases("pcgr")

_VERSION = re.compile(r"v?(\d+\.\d+\.\d+)")


class UnknownReleaseError(ValueError):
    """A release the tables hold no facts for: nothing can be checked or built for it."""


def normalise_release(release: str) -> str:
    """`v2.3.2` and `2.3.2` name the same release."""
    match = _VERSION.fullmatch(release.strip())
    return match.group(1) if match else release


def table(release: str | None = None, program: str = "pcgr") -> ReleaseTable:
    """The option table of `program` at `release` (default: DEFAULT_RELEASE)."""
    version = normalise_release(release) if release is not None else DEFAULT_RELEASE
    found = TABLES.get((program, version))
    if found is None:
        known = ", ".join(r for p, r in TABLES if p == program) or "none"
        raise UnknownReleaseError(
            f"{program.upper()} {release!r}: no option table for this release (tables: {known}); "
            "add one written from that release's source before running it"
        )
    return found


# The default release's options (what most callers mean by "the options").
OPTIONS: Mapping[str, OptionSpec] = table().options


def releases_with(name: str, program: str = "pcgr") -> list[str]:
    """The releases of `program` whose table has the option `name`, newest first."""
    return [r for (p, r), t in TABLES.items() if p == program and name in t.options]


def validate_option(
    spec: OptionSpec, value: Any, release: str | None = None, program: str = "pcgr"
) -> list[Problem]:
    """Every problem with one option's value, each naming the option and the rule."""
    return spec.problems(value, normalise_release(release or DEFAULT_RELEASE), program)


def validate_options(
    mapping: Mapping[str, Any],
    release: str | None = None,
    *,
    cna: bool = False,
    program: str | None = "pcgr",
) -> list[Problem]:
    """Every problem with a sample's options for `program` at `release`: names the release lacks
    or no sample may set, missing required ones, bad values, broken cross-option rules. `cna`:
    the sample carries a copy-number file (PCGR checks some rules only then).

    Without a release, the options are valid when any release's table accepts them; otherwise
    the problems are the default release's. With `program=None`, valid when any program's are
    (the problems shown are the closest program's, PCGR's on a tie).
    """
    if program is None:
        found_by_program = [validate_options(mapping, release, cna=cna, program=p) for p in PROGRAMS]
        return min(found_by_program, key=_distance)
    if release is None:
        found = {r: validate_options(mapping, r, cna=cna, program=program) for r in releases(program)}
        if any(not problems for problems in found.values()):
            return []
        return found[DEFAULT_RELEASE]
    release_table = table(release, program)
    problems = [
        _not_an_option(name, value, release_table)
        for name, value in mapping.items()
        if name not in release_table.options
    ]
    return problems + release_table.problems(mapping, cna=cna)


def with_defaults(
    mapping: Mapping[str, Any], release: str | None = None, program: str = "pcgr"
) -> dict[str, Any]:
    """The sample's options completed with the release's defaults (options without one stay absent)."""
    return {**table(release, program).defaults(), **mapping}


def _distance(problems: list[Problem]) -> tuple[int, int]:
    """How far options are from a program, by its problems: the names it lacks, then the problems.
    The smallest is the program they are written for (a germline sample with one bad CPSR value
    hears about that value, not about the CPSR options PCGR lacks; PCGR's on a tie)."""
    unknown = sum(p.code in ("option_unknown", "option_unavailable") for p in problems)
    return unknown, len(problems)


def _not_an_option(name: str, value: Any, release_table: ReleaseTable) -> Problem:
    safe = vocabulary.token_problem(name) is None
    label = name if safe else vocabulary.shown(name)
    where = f"option {label}"
    release_label = release_table.label
    program = release_table.program.upper()
    reason = release_table.not_sample_options.get(name)
    if reason is not None:
        return Problem("option_unknown", f"{name} is not a sample option ({reason})", where)
    others = releases_with(name, release_table.program) if safe else []
    if others:
        return Problem(
            "option_unavailable",
            f"{name} is not available in {release_label} (it is an option of {program} {', '.join(others)})",
            where,
        )
    hint = ""
    if name.startswith("-"):
        hint = " (write option names without the leading '--')"
    elif isinstance(value, dict):
        hint = " (the sample TOML is flat: no tables)"
    else:
        renamed = [s.name for s in release_table.options.values() if s.flag == f"--{name}"]
        if renamed:
            hint = f" (write {renamed[0]}: Capillary's name for {release_label}'s --{name})"
        elif safe:
            elsewhere = [p.upper() for p in PROGRAMS if p != release_table.program and releases_with(name, p)]
            if elsewhere:
                hint = f" (an option of {' and '.join(elsewhere)}, not of {program})"
    return Problem("option_unknown", f"unknown {program} option {vocabulary.shown(name)}{hint}", where)
